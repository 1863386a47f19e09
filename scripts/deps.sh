#!/usr/bin/env bash
# Installs the system packages Sluice's tests, demo and benchmarks need, and only
# those that are missing: the PostgreSQL server (the tests start throwaway servers
# from its binaries), pgbench, kcat, and Prometheus (prometheus and promtool: the
# observability tests check the alert rules and dashboards against a real one). Safe to
# run again; changes nothing when all is there. Needs apt-get (Debian, Ubuntu). Go itself is not installed here.
set -euo pipefail

log() { printf 'deps: %s\n' "$*" >&2; }

if ! command -v go >/dev/null 2>&1; then
	log "go is not on PATH; install Go (see go.mod for the version) first"
	exit 1
fi

have_glob() { compgen -G "$1" >/dev/null; }

missing=()
# Debian and Ubuntu keep the server binaries off PATH, one directory per version.
have_glob '/usr/lib/postgresql/*/bin/postgres' || missing+=(postgresql)
# On Debian 12, /usr/bin/pgbench is a version wrapper from postgresql-client-common;
# the binary itself ships in postgresql-<version> (which provides postgresql-contrib-<version>).
if ! have_glob '/usr/lib/postgresql/*/bin/pgbench' && ! pgbench --version >/dev/null 2>&1; then
	missing+=(postgresql-contrib)
fi
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
	missing+=(prometheus)
fi

if ((${#missing[@]} == 0)); then
	log "all present"
	exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
	log "missing: ${missing[*]}; no apt-get here, install them with your package manager"
	exit 1
fi
as_root=()
if ((EUID != 0)); then
	if ! command -v sudo >/dev/null 2>&1; then
		log "missing: ${missing[*]}; as root, run:"
		log "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
		exit 1
	fi
	as_root=(sudo)
fi

apt_install() {
	"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --no-install-recommends "${missing[@]}"
}
log "installing: ${missing[*]}"
# A fresh image may have no package lists, or stale ones: update only if needed.
if ! apt_install; then
	log "install failed; running apt-get update and trying again"
	"${as_root[@]}" apt-get update
	apt_install
fi

have_glob '/usr/lib/postgresql/*/bin/postgres' || { log "postgres still missing after install"; exit 1; }
command -v kcat >/dev/null 2>&1 || { log "kcat still missing after install"; exit 1; }
command -v promtool >/dev/null 2>&1 || { log "prometheus (promtool) still missing after install"; exit 1; }
log "done"
