/* casfs path-info: what `nix path-info` shows, plus the castore root. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../basic/encoding.h"
#include "../basic/util.h"
#include "../storepath/ca.h"
#include "../storepath/storepath.h"
#include "args.h"

static void json_string(const char *s, size_t len)
{
	putchar('"');
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

/* "fixed:r:sha256:<nixbase32>" and friends, as nix prints `ca` ("" if
 * none or unprintable). */
static void format_ca(const struct casfs_pathinfo *pi, char *out, size_t cap)
{
	out[0] = 0;
	struct casfs_ca ca;
	struct casfs_buf b = CASFS_BUF_INIT;
	if (pi->has_ca && casfs_ca_from_pathinfo(pi->ca_type, pi->ca_digest, pi->ca_digest_len, &ca,
						 NULL) >= 0 &&
	    casfs_ca_format(&ca, &b) >= 0)
		snprintf(out, cap, "%.*s", (int)b.len, (const char *)b.data);
	casfs_buf_release(&b);
}

static void reference_path(const struct casfs_pathinfo *pi, size_t i, char *out)
{
	if (i < pi->n_reference_names) {
		snprintf(out, CASFS_STORE_PATH_MAX + 1, "%s/%s", CASFS_STORE_DIR,
			 pi->reference_names[i]);
		return;
	}
	char h[CASFS_STORE_PATH_HASH_CHARS + 1];
	casfs_nixbase32_encode(pi->references[i], CASFS_STORE_DIGEST_LEN, h);
	snprintf(out, CASFS_STORE_PATH_MAX + 1, "%s/%s", CASFS_STORE_DIR, h);
}

static const char *node_type_name(enum casfs_node_type t)
{
	return t == CASFS_NODE_DIRECTORY ? "directory" : t == CASFS_NODE_FILE ? "file" :
	       t == CASFS_NODE_SYMLINK ? "symlink" : "none";
}

static void print_json(const char *path, const struct casfs_pathinfo *pi, bool first)
{
	char sri[CASFS_SHA256_SRI_STR_LEN + 1], ca[256], b3[CASFS_B3_STR_LEN + 1];
	casfs_sha256_format_sri(pi->nar_sha256, sri);
	format_ca(pi, ca, sizeof(ca));
	printf("%s{\"path\":", first ? "" : ",");
	json_string(path, strlen(path));
	printf(",\"narHash\":\"%s\",\"narSize\":%llu,\"references\":[", sri,
	       (unsigned long long)pi->nar_size);
	for (size_t i = 0; i < pi->n_references; i++) {
		char ref[CASFS_STORE_PATH_MAX + 1];
		reference_path(pi, i, ref);
		printf("%s", i ? "," : "");
		json_string(ref, strlen(ref));
	}
	printf("]");
	if (ca[0])
		printf(",\"ca\":\"%s\"", ca);
	if (pi->has_deriver) {
		char h[CASFS_STORE_PATH_HASH_CHARS + 1];
		casfs_nixbase32_encode(pi->deriver_digest, CASFS_STORE_DIGEST_LEN, h);
		char drv[CASFS_STORE_PATH_MAX + 1];
		snprintf(drv, sizeof(drv), "%s/%s-%s", CASFS_STORE_DIR, h, pi->deriver_name);
		printf(",\"deriver\":");
		json_string(drv, strlen(drv));
	}
	printf(",\"signatures\":[");
	for (size_t i = 0; i < pi->n_signatures; i++) {
		char *sig = malloc(CASFS_BASE64_LEN(pi->signatures[i].data_len) + 1);
		if (!sig)
			break;
		casfs_base64_encode(pi->signatures[i].data, pi->signatures[i].data_len, sig);
		printf("%s\"", i ? "," : "");
		printf("%s:%s\"", pi->signatures[i].name, sig);
		free(sig);
	}
	printf("],\"castore\":{\"type\":\"%s\"", node_type_name(pi->node.type));
	if (pi->node.type == CASFS_NODE_SYMLINK) {
		printf(",\"target\":");
		json_string(pi->node.target, pi->node.target_len);
	} else {
		casfs_b3_format(pi->node.digest, b3);
		printf(",\"digest\":\"%s\",\"size\":%llu", b3, (unsigned long long)pi->node.size);
		if (pi->node.type == CASFS_NODE_FILE)
			printf(",\"executable\":%s", pi->node.executable ? "true" : "false");
	}
	printf("}}");
}

static void print_text(const char *path, const struct casfs_pathinfo *pi)
{
	char nix[CASFS_SHA256_NIX_STR_LEN + 1], ca[256], b3[CASFS_B3_STR_LEN + 1];
	casfs_sha256_format_nix(pi->nar_sha256, nix);
	format_ca(pi, ca, sizeof(ca));
	printf("%s\n  narHash: %s\n  narSize: %llu\n  references:", path, nix,
	       (unsigned long long)pi->nar_size);
	for (size_t i = 0; i < pi->n_references; i++) {
		char ref[CASFS_STORE_PATH_MAX + 1];
		reference_path(pi, i, ref);
		printf(" %s", ref);
	}
	printf("\n");
	if (ca[0])
		printf("  ca: %s\n", ca);
	printf("  castore: %s", node_type_name(pi->node.type));
	if (pi->node.type == CASFS_NODE_SYMLINK) {
		printf(" -> %s\n", pi->node.target);
	} else {
		casfs_b3_format(pi->node.digest, b3);
		printf(" %s size %llu%s\n", b3, (unsigned long long)pi->node.size,
		       pi->node.type == CASFS_NODE_FILE && pi->node.executable ? " executable" : "");
	}
}

static const char path_info_help[] =
	"usage: casfs path-info [--json] STORE_PATH...\n"
	"\n"
	"Show each store path's NAR hash and size, references, content address\n"
	"and castore root node.  --json prints a list of objects with the field\n"
	"names of `nix path-info --json` (path, narHash, narSize, references, ca,\n"
	"signatures) plus \"castore\" (type, digest, size).\n";

int cmd_path_info(struct cli *c, int argc, char **argv)
{
	bool json = false;
	struct cli_flag flags[] = { { "--json", &json, NULL }, { NULL, NULL, NULL } };
	struct cli_args a;
	int r = cli_args_parse(c, argc, argv, flags, path_info_help, &a);
	_cleanup_free_ char **pos = a.pos;
	if (r < 0)
		return cli_args_exit(r);
	if (a.n_pos == 0)
		return cli_usage_error(c, "no store path given");
	/* validate every argument before printing anything */
	for (int i = 0; i < a.n_pos; i++) {
		struct casfs_store_path sp;
		struct casfs_error err = { 0 };
		r = casfs_store_path_parse(a.pos[i], &sp, &err);
		if (r < 0)
			return cli_fail(c, r, &err);
	}
	if ((r = cli_open_store(c, CLI_STORE_READ)))
		return r;
	if (json)
		printf("[");
	int status = CLI_EXIT_OK, printed = 0;
	for (int i = 0; i < a.n_pos; i++) {
		struct casfs_store_path sp;
		struct casfs_pathinfo pi;
		struct casfs_error err = { 0 };
		casfs_store_path_parse(a.pos[i], &sp, NULL);
		r = casfs_pathinfo_get(c->store->pathinfos, sp.digest, &pi, &err);
		if (r == -ENOENT)
			r = casfs_error_set(&err, r, "'%s' is not in the store", a.pos[i]);
		if (r < 0) {
			fflush(stdout);
			status = cli_fail(c, r, &err);
			continue;
		}
		char path[CASFS_STORE_PATH_MAX + 1];
		casfs_store_path_format(&sp, path);
		if (json)
			print_json(path, &pi, printed++ == 0);
		else
			print_text(path, &pi);
		casfs_pathinfo_release(&pi);
	}
	if (json)
		printf("]\n");
	return status;
}
