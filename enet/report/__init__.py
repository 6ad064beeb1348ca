"""Reports: `aggregate` (pure: records, columns, a comparison's statistics), `plots`
(matplotlib) and `files` (what enet eval and compare write). Import the module you need:
this package imports none of them, so the pure part never loads matplotlib."""
