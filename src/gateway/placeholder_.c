/* gateway layer placeholder: keeps the library non-empty. */
int loco_gateway_placeholder_(void);
int loco_gateway_placeholder_(void) { return 0; }
