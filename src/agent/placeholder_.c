/* agent layer placeholder: keeps the library non-empty until the tools land. */
int loco_agent_placeholder_(void);
int loco_agent_placeholder_(void) { return 0; }
