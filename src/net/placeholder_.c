/* net layer placeholder: keeps the library non-empty. */
int loco_net_placeholder_(void);
int loco_net_placeholder_(void) { return 0; }
