#!/usr/bin/env bash
# Installs the pgvector extension (needed by the PostgreSQL memory backend, src/memory/pg-store.ts)
# into the machine's PostgreSQL server, on Debian bookworm, as root.
#
# pgvector has no bookworm package, so it is built from Debian trixie's SOURCE package
# (pgvector 0.8.0): apt downloads the upstream tarball and checks it against trixie's signed
# Release file. Only a deb-src entry is added for trixie, so no trixie binary can ever be
# installed on this machine. The build needs bookworm's postgresql-server-dev-<major>, make, gcc.
#
# Idempotent: does nothing when vector.control is already in the server's extension directory.
# Usage: scripts/setup-pgvector.sh            (PG_MAJOR=16 to pick another installed server)
set -euo pipefail

log() { echo "setup-pgvector: $*"; }
die() { echo "setup-pgvector: error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (it installs Debian packages and writes into PostgreSQL's directories)"

# The server's own pg_config (/usr/bin/pg_config may be libpq-dev's, which knows no server paths).
if [ -z "${PG_MAJOR:-}" ]; then
  PG_MAJOR="$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -n 1 || true)"
fi
[ -n "$PG_MAJOR" ] || die "no PostgreSQL server found under /usr/lib/postgresql (apt-get install postgresql first)"
PG_CONFIG="/usr/lib/postgresql/$PG_MAJOR/bin/pg_config"
[ -x "$PG_CONFIG" ] || die "$PG_CONFIG not found (is postgresql-client-$PG_MAJOR installed?)"

CONTROL="$("$PG_CONFIG" --sharedir)/extension/vector.control"
if [ -f "$CONTROL" ]; then
  log "pgvector is already installed for PostgreSQL $PG_MAJOR ($CONTROL); nothing to do"
  exit 0
fi

SOURCES=/etc/apt/sources.list.d/caxton-pgvector-src.sources
log "adding Debian trixie as a SOURCE-only apt entry ($SOURCES)"
cat >"$SOURCES" <<'EOF'
# Added by Caxton's scripts/setup-pgvector.sh: Debian trixie source packages only (deb-src),
# to build pgvector, which bookworm does not package. No trixie binaries come from here.
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF

log "apt-get update"
apt-get update -qq

log "installing the build dependencies: postgresql-server-dev-$PG_MAJOR make gcc"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "postgresql-server-dev-$PG_MAJOR" make gcc

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
log "downloading the pgvector source package from trixie into $WORK (checked against the signed Release)"
# (apt warns that the download is unsandboxed: _apt cannot write into root's mktemp directory.)
apt-get source --download-only -qq pgvector
ORIG="$(ls pgvector_*.orig.tar.* 2>/dev/null | head -n 1 || true)"
[ -n "$ORIG" ] || die "apt-get source did not download pgvector's upstream tarball (see the messages above)"
log "extracting $ORIG"
mkdir src
tar -xf "$ORIG" -C src --strip-components=1

log "building pgvector with $PG_CONFIG"
make -C src -s PG_CONFIG="$PG_CONFIG" OPTFLAGS="" >/dev/null
log "installing pgvector"
make -C src -s PG_CONFIG="$PG_CONFIG" install >/dev/null

[ -f "$CONTROL" ] || die "make install finished but $CONTROL is missing"
log "pgvector $(sed -n "s/^default_version = '\(.*\)'/\1/p" "$CONTROL") installed for PostgreSQL $PG_MAJOR; enable it per database with CREATE EXTENSION vector (the memory backend does)"
