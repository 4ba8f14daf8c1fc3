/* NARs served by position: the layout of a store path's NAR computed from
 * its castore tree alone, then any byte range of it rendered on demand,
 * every file byte verified before it is handed out.
 *
 * Layout (a "plan").  A NAR (format: nar/nar-reader.h) is its framing
 * tokens with the files' contents between them.  File sizes are in the
 * directory nodes, so walking the tree (directories only, no blob is
 * read) gives every token and the NAR offset of every file's contents:
 *
 *   literal bytes  L0 | file 0 | L1 | file 1 | ... | Ln
 *
 * The plan keeps the concatenated literal bytes (L0..Ln, the framing and
 * the padding) and, per non-empty file, {nar_off, size, blob digest}.
 * Offset x lies in file i if nar_off(i) <= x < nar_off(i) + size(i);
 * otherwise in the literal run after the last file starting before x, at
 * literal position x - (sizes of the files before x).  A range read thus
 * starts at its offset without reading any blob before it.
 *
 * The same walk writes the `.ls` listing Nix 2.8 writes with
 * write-nar-listing=true (binary-cache-store.cc, listNar over json.cc):
 *
 *   {"version":1,"root":NODE}
 *   NODE = {"type":"directory","entries":{"NAME":NODE,...}}   names in NAR order
 *        | {"type":"regular","size":N[,"executable":true],"narOffset":OFF}
 *        | {"type":"symlink","target":"T"}
 *
 * no whitespace, no trailing newline; strings escape `"` and `\` with a
 * backslash, \n \r \t as such, other bytes below 0x20 as \u00XX (lower-case
 * hex), every other byte (UTF-8 or not) verbatim.  OFF is the offset of
 * the file's contents in the uncompressed NAR.
 *
 * Verification (cursor reads).  A file of one outboard group or less is
 * read whole and hashed against its digest before any byte of it goes
 * out; a larger one is read group by group, each group checked against
 * the blob's outboard (digest/outboard.h; built from the blob when none is
 * stored) before it is copied out.  A missing, short or damaged blob is an
 * error (-ENOENT / -EBADMSG, err names the digest); the bytes before it in
 * the response were good, and a server must then cut the response.
 *
 * A plan is immutable once built and may be shared by threads; a cursor
 * belongs to one thread at a time. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../basic/error.h"
#include "../proto/castore-proto.h"
#include "store.h"

struct casfs_nar_plan;
struct casfs_nar_cursor;

/* Walk `root` (a PathInfo root node; borrowed) through s's directory
 * service.  With `want_listing`, also build the `.ls` JSON.  -ENOENT /
 * -EBADMSG for a missing or damaged directory (err names it), -EBADMSG
 * for a tree deeper than CASFS_NAR_MAX_DEPTH, -ENOMEM.  Memory: the
 * framing bytes (about 100 bytes per entry) and 56 bytes per file. */
int casfs_nar_plan_new(struct casfs_store *s, const struct casfs_node *root, bool want_listing,
		       struct casfs_nar_plan **ret, struct casfs_error *err);
void casfs_nar_plan_free(struct casfs_nar_plan *p);
/* The NAR's size in bytes. */
uint64_t casfs_nar_plan_size(const struct casfs_nar_plan *p);
/* The `.ls` JSON (not NUL-terminated), or NULL without want_listing. */
const char *casfs_nar_plan_listing(const struct casfs_nar_plan *p, size_t *ret_len);

/* A reader of one plan's bytes, for one response.  `s` and `p` are
 * borrowed and must outlive it.  NULL on OOM. */
struct casfs_nar_cursor *casfs_nar_cursor_new(struct casfs_store *s, const struct casfs_nar_plan *p);
void casfs_nar_cursor_free(struct casfs_nar_cursor *c);
/* Up to `len` verified bytes at NAR offset `off` into buf: returns how
 * many (fewer than len only at the end of the NAR), 0 at or past the end,
 * or -errno (err set; see verification above).  Reads in increasing
 * order are cheapest (the current blob and group stay loaded). */
ssize_t casfs_nar_cursor_read(struct casfs_nar_cursor *c, uint64_t off, void *buf, size_t len,
			      struct casfs_error *err);
