/* banned.h: libc calls loco never uses (force-included into every translation unit).
 * Use buf_appendf/snprintf, str_parse_* and the _r time functions instead. */
#ifndef LOCO_BANNED_H
#define LOCO_BANNED_H

#define LOCO_BANNED(func) sorry_##func##_is_banned_in_loco

#undef strcpy
#define strcpy(x, y) LOCO_BANNED(strcpy)
#undef strcat
#define strcat(x, y) LOCO_BANNED(strcat)
#undef strncpy
#define strncpy(x, y, n) LOCO_BANNED(strncpy)
#undef sprintf
#define sprintf(...) LOCO_BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) LOCO_BANNED(vsprintf)
#undef strtok
#define strtok(x, y) LOCO_BANNED(strtok)
#undef atoi
#define atoi(x) LOCO_BANNED(atoi)
#undef atol
#define atol(x) LOCO_BANNED(atol)
#undef gmtime
#define gmtime(x) LOCO_BANNED(gmtime)
#undef localtime
#define localtime(x) LOCO_BANNED(localtime)

#endif
