# Build a small closure with real Nix, for the binary cache tests.  Source
# after common.sh; sets
#   P_TREE   a tree added with nix-store --add (CA fixed:r:sha256)
#   P_REF    an input-addressed path (with a deriver) referring to P_TREE
#   P_FLAT   a file added with nix-store --add-fixed sha256 (CA fixed:sha256)
#   P_TEXT   a builtins.toFile text file (CA text:sha256)
#   SK, PK   a Nix signing key pair (files), PK_TEXT the public key
# and nixflags, the options every Nix call here needs.
. "$TOP/tests/sh/lib/nix-env.sh"
nixflags=(--extra-experimental-features nix-command "${NIXOPTS[@]}")
python3 "$TOP/tests/sh/lib/make-tree.py" tricky "$TMP/tree" >/dev/null
P_TREE=$(nixstore --add "$TMP/tree")
# Unique per run, so that it is built here (input-addressed).
cat >"$TMP/ref.nix" <<NIX
derivation {
  name = "casfs-test-ref"; system = builtins.currentSystem; builder = "/bin/sh";
  args = [ "-c" "echo \${builtins.storePath $P_TREE} $RANDOM$$ > \$out" ];
}
NIX
P_REF=$(nix-build --option build-users-group "" --option sandbox false --option substituters "" \
	--no-out-link "$TMP/ref.nix" 2>/dev/null)
printf 'flat file %s\n' "$RANDOM$$" >"$TMP/flat.txt"
P_FLAT=$(nixstore --add-fixed sha256 "$TMP/flat.txt")
P_TEXT=$(nix-instantiate --option build-users-group "" --read-write-mode --eval --raw \
	-E "builtins.toFile \"casfs-text\" \"text $RANDOM$$\"" 2>/dev/null ||
	nix-instantiate --option build-users-group "" --read-write-mode --eval \
	-E "builtins.toFile \"casfs-text\" \"text $RANDOM$$\"" | tr -d '"')
SK=$TMP/secret.key
PK=$TMP/public.key
nix key generate-secret "${nixflags[@]}" --key-name casfs-test-1 >"$SK"
nix key convert-secret-to-public "${nixflags[@]}" <"$SK" >"$PK"
PK_TEXT=$(cat "$PK")
hashpart() { basename "$1" | cut -c1-32; }
