/* backend layer placeholder: keeps the library non-empty. */
int loco_backend_placeholder_(void);
int loco_backend_placeholder_(void) { return 0; }
