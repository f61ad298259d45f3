#!/usr/bin/env bash
# Builds the copy-offload OCI image offline — no container daemon, no registry — from a built
# binary and the shared libraries it loads on this machine: an OCI image layout (`oci-layout`,
# `index.json`, `blobs/sha256/…`) and the same layout as one tar (`<out>.tar`, what
# `skopeo copy oci-archive:<out>.tar docker://…` or `podman load -i` take).
#
# The image: one layer holding /usr/local/bin/copy-offload, the libraries `ldd` names (with the
# dynamic loader at the path the binary asks for), the system CA bundle (public-CA verification of
# vCenter and arrays), /etc/passwd and /etc/group naming UID/GID 107, and an empty /tmp. No shell,
# no package manager. ENTRYPOINT ["copy-offload","populate"] (found on PATH=/usr/local/bin), so
# Forklift's controller, which sets only the pod's args, runs the populator; the same image runs
# the controller with the command overridden (`command: ["copy-offload", "controller"]`).
# USER 107:107. The layer is reproducible: sorted entries, owner 0, mtime 0, gzip without name or
# time, so the same binary gives the same digests.
#
# Usage: scripts/build-image.sh [--binary PATH] [--out DIR] [--tag TAG]
#   --binary  the copy-offload binary (default: $CARGO_TARGET_DIR or ./target, release/copy-offload)
#   --out     layout directory to write (default: target/image/copy-offload); replaced if present
#   --tag     org.opencontainers.image.ref.name in index.json (default: the binary's version)
# Needs: bash, tar, gzip, sha256sum, ldd, python3 (JSON).
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir=${CARGO_TARGET_DIR:-target}
binary="$target_dir/release/copy-offload"
out="target/image/copy-offload"
tag=""
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --tag) tag=$2; shift 2 ;;
        *) echo "build-image.sh: unknown argument $1 (see the header for usage)" >&2; exit 2 ;;
    esac
done
for tool in tar gzip sha256sum ldd python3; do
    command -v "$tool" >/dev/null || { echo "build-image.sh: $tool is missing (apt-get install -y $tool)" >&2; exit 1; }
done
[ -x "$binary" ] || {
    echo "build-image.sh: no binary at $binary; build it (cargo build --release -p copy-offload) or pass --binary" >&2
    exit 1
}
version=$("$binary" --version | head -n 1 | awk '{ print $NF }')
tag=${tag:-$version}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/tmp"
chmod 1777 "$root/tmp"
install -m 0755 "$binary" "$root/usr/local/bin/copy-offload"

# Every library the dynamic loader resolves for the binary, at the path it resolves it from, and the
# loader itself at the path named in the binary's program header (ldd's line without `=>`).
ldd "$binary" | awk '
    $2 == "=>" && $3 ~ /^\// { print $3 }
    $1 ~ /^\// { print $1 }
' | while read -r library; do
    mkdir -p "$root$(dirname "$library")"
    cp -L "$library" "$root$library"
done
if ldd "$binary" | grep -q 'not found'; then
    echo "build-image.sh: a library of $binary is not found: $(ldd "$binary" | grep 'not found')" >&2
    exit 1
fi
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
else
    echo "build-image.sh: /etc/ssl/certs/ca-certificates.crt is missing (apt-get install -y ca-certificates)" >&2
    exit 1
fi
printf 'root:x:0:0:root:/:/nonexistent\ncopy-offload:x:107:107:copy-offload:/tmp:/nonexistent\n' >"$root/etc/passwd"
printf 'root:x:0:\ncopy-offload:x:107:\n' >"$root/etc/group"

layer_tar="$work/layer.tar"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=gnu \
    -C "$root" -cf "$layer_tar" .
gzip -n -c "$layer_tar" >"$work/layer.tar.gz"

rm -rf "$out"
mkdir -p "$out/blobs/sha256"
python3 - "$work" "$out" "$tag" "$version" <<'PY'
import hashlib, json, os, shutil, sys

work, out, tag, version = sys.argv[1:]

def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()

def blob_from_bytes(data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(out, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + digest, "size": len(data)}

def canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()

diff_id = "sha256:" + sha256(os.path.join(work, "layer.tar"))
layer_gz = os.path.join(work, "layer.tar.gz")
layer_digest = sha256(layer_gz)
shutil.copyfile(layer_gz, os.path.join(out, "blobs", "sha256", layer_digest))
layer = {
    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
    "digest": "sha256:" + layer_digest,
    "size": os.path.getsize(layer_gz),
}
config = {
    "created": "1970-01-01T00:00:00Z",
    "architecture": "amd64",
    "os": "linux",
    "config": {
        "User": "107:107",
        "Entrypoint": ["copy-offload", "populate"],
        "Env": ["PATH=/usr/local/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"],
        "WorkingDir": "/tmp",
        "Labels": {
            "org.opencontainers.image.title": "copy-offload",
            "org.opencontainers.image.version": version,
            "org.opencontainers.image.description": "vSphere copy-offload volume populator (copy-offload populate; copy-offload controller by command override)",
        },
    },
    "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "scripts/build-image.sh"}],
}
config_descriptor = dict(
    mediaType="application/vnd.oci.image.config.v1+json", **blob_from_bytes(canonical(config))
)
manifest = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": config_descriptor,
    "layers": [layer],
}
manifest_descriptor = dict(
    mediaType="application/vnd.oci.image.manifest.v1+json",
    **blob_from_bytes(canonical(manifest)),
    annotations={"org.opencontainers.image.ref.name": tag},
    platform={"architecture": "amd64", "os": "linux"},
)
index = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [manifest_descriptor],
}
with open(os.path.join(out, "index.json"), "wb") as f:
    f.write(canonical(index))
with open(os.path.join(out, "oci-layout"), "wb") as f:
    f.write(canonical({"imageLayoutVersion": "1.0.0"}))
PY

tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$out" -cf "$out.tar" .
echo "build-image.sh: wrote $out (OCI layout) and $out.tar, tag $tag, layer $(du -k "$work/layer.tar.gz" | cut -f1) KiB compressed"
