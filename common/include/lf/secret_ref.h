/* lf/secret_ref.h - a destination's signing secret given by reference in a
 * configuration file (routing.json's team destinations) rather than written in it:
 *   "secret_env": "NAME"        the value of environment variable NAME;
 *   "secret_file": "/abs/path"  the content of that file (one trailing newline off),
 *                               as container secrets are mounted;
 * instead of "secret": "...". The operator's file then holds no secret. */
#ifndef LF_SECRET_REF_H
#define LF_SECRET_REF_H

#include <jansson.h>
#include <stddef.h>

/* Replaces a reference in dest (a destination object) by the "secret" it names. A
 * destination without one is left as it is. Returns 0, or -1 with a one-line reason in
 * why (the reference named, never a secret): both "secret" and a reference, or two
 * references, a variable that is not set or empty, a path that is not absolute, a file
 * that cannot be read, is empty or larger than 4096 bytes. */
int lf_secret_ref_resolve(json_t *dest, char *why, size_t whysz);

#endif
