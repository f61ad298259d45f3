#!/usr/bin/env bash
# Checks an OCI image layout written by scripts/build-image.sh: every blob matches its digest, the
# layer's diff_id matches its uncompressed content, the config says ENTRYPOINT
# ["copy-offload","populate"] and USER 107:107 (non-root), the layer holds no shell, the
# compressed image is below a size bound, and the image's own root filesystem runs
# `copy-offload --version` (the same version as the binary it was built from) and
# `copy-offload controller --help` (the command override Forklift-independent deployments use).
# As root the programs run under `chroot --userspec=107:107` (only the image's files are
# visible); otherwise through the image's own dynamic loader and libraries.
#
# Usage: scripts/check-image.sh LAYOUT_DIR MAX_MIB BINARY
set -euo pipefail

[ $# -eq 3 ] || { echo "usage: scripts/check-image.sh LAYOUT_DIR MAX_MIB BINARY" >&2; exit 2; }
layout=$1
max_mib=$2
binary=$3
fail() { echo "check-image.sh: $*" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Structure, digests, config; prints the layer blob path.
layer=$(python3 - "$layout" "$max_mib" <<'PY'
import gzip, hashlib, json, os, sys

layout, max_mib = sys.argv[1], float(sys.argv[2])

def fail(message):
    sys.exit("check-image.sh: " + message)

def blob(descriptor):
    algorithm, digest = descriptor["digest"].split(":", 1)
    if algorithm != "sha256":
        fail("unexpected digest algorithm in %s" % descriptor)
    path = os.path.join(layout, "blobs", "sha256", digest)
    with open(path, "rb") as f:
        data = f.read()
    if hashlib.sha256(data).hexdigest() != digest:
        fail("blob %s does not match its digest" % digest)
    if len(data) != descriptor["size"]:
        fail("blob %s has %d bytes, its descriptor says %d" % (digest, len(data), descriptor["size"]))
    return path, data

with open(os.path.join(layout, "oci-layout")) as f:
    if json.load(f).get("imageLayoutVersion") != "1.0.0":
        fail("oci-layout is not imageLayoutVersion 1.0.0")
with open(os.path.join(layout, "index.json")) as f:
    index = json.load(f)
if len(index["manifests"]) != 1:
    fail("index.json names %d manifests, expected 1" % len(index["manifests"]))
manifest_descriptor = index["manifests"][0]
if manifest_descriptor["mediaType"] != "application/vnd.oci.image.manifest.v1+json":
    fail("index entry is not an OCI image manifest")
_, manifest_bytes = blob(manifest_descriptor)
manifest = json.loads(manifest_bytes)
if manifest["config"]["mediaType"] != "application/vnd.oci.image.config.v1+json":
    fail("manifest config is not an OCI image config")
_, config_bytes = blob(manifest["config"])
config = json.loads(config_bytes)
if len(manifest["layers"]) != 1:
    fail("expected one layer, found %d" % len(manifest["layers"]))
layer_path, layer_bytes = blob(manifest["layers"][0])
diff_id = "sha256:" + hashlib.sha256(gzip.decompress(layer_bytes)).hexdigest()
if config["rootfs"]["diff_ids"] != [diff_id]:
    fail("config diff_ids %s do not match the layer (%s)" % (config["rootfs"]["diff_ids"], diff_id))

image = config["config"]
if image.get("Entrypoint") != ["copy-offload", "populate"]:
    fail("ENTRYPOINT is %s, expected [\"copy-offload\", \"populate\"]" % image.get("Entrypoint"))
if image.get("Cmd"):
    fail("CMD is %s; Forklift passes only args, so the image must have none" % image["Cmd"])
if image.get("User") != "107:107":
    fail("USER is %r, expected 107:107" % image.get("User"))
if config["os"] != "linux" or config["architecture"] != "amd64":
    fail("platform is %s/%s" % (config["os"], config["architecture"]))
size = len(manifest_bytes) + len(config_bytes) + len(layer_bytes)
if size > max_mib * 1024 * 1024:
    fail("image is %.1f MiB compressed, above the bound of %s MiB" % (size / 1048576, max_mib))
print(layer_path)
print("image: %.1f MiB compressed (bound %s MiB), entrypoint %s, user %s"
      % (size / 1048576, max_mib, image["Entrypoint"], image["User"]), file=sys.stderr)
PY
)

root="$work/rootfs"
mkdir "$root"
tar -xzf "$layer" -C "$root"
for shell in bin/sh bin/bash bin/dash bin/busybox usr/bin/sh; do
    [ ! -e "$root/$shell" ] || fail "the image holds a shell: /$shell"
done
[ -x "$root/usr/local/bin/copy-offload" ] || fail "no /usr/local/bin/copy-offload in the image"

expected=$("$binary" --version)
chroot=$(PATH="$PATH:/usr/sbin:/sbin" command -v chroot) || fail "chroot is missing (coreutils)"
run_in_image() {
    if [ "$(id -u)" = 0 ]; then
        env -i PATH=/usr/local/bin "$chroot" --userspec=107:107 "$root" copy-offload "$@"
    else
        loader=$(find "$root/lib64" "$root/lib" -maxdepth 2 -name 'ld-linux*.so*' 2>/dev/null | head -n 1)
        [ -n "$loader" ] || fail "no dynamic loader in the image"
        libraries=$(find "$root" -name '*.so*' -printf '%h\n' | sort -u | paste -sd:)
        env -i "$loader" --library-path "$libraries" "$root/usr/local/bin/copy-offload" "$@"
    fi
}
actual=$(run_in_image --version) || fail "copy-offload --version failed inside the image"
[ "$actual" = "$expected" ] || fail "the image says '$actual', the binary '$expected'"
run_in_image controller --help >/dev/null || fail "copy-offload controller --help failed inside the image"
echo "check-image.sh: ok — $(printf '%s\n' "$actual" | head -n 1) runs from the image's root filesystem ($( [ "$(id -u)" = 0 ] && echo "chroot as 107:107" || echo "image loader"))"
