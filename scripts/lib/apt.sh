# Sourced by scripts/setup, scripts/vm-test and scripts/chroot-run: sudo
# when not root, and the bookworm-backports source on the mirror this
# machine already uses.

say() { printf '%s: %s\n' "${SAY_PREFIX:-$(basename "$0")}" "$*" >&2; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=(sudo); else say "not root and no sudo: run this as root"; exit 1; fi
fi

installed_version() { dpkg-query -W -f='${Status} ${Version}\n' "$1" 2>/dev/null | awk '/install ok installed/{print $4}'; }

# The Debian mirror this machine uses for bookworm (default deb.debian.org).
debian_mirror() {
  local uri
  uri=$(grep -hs -E '^URIs:' /etc/apt/sources.list.d/*.sources | grep -v security | head -n1 | awk '{print $2}')
  if [ -z "$uri" ]; then
    uri=$(grep -hs -E '^deb[[:space:]]' /etc/apt/sources.list | grep -v security | grep bookworm | head -n1 | awk '{print $2}')
  fi
  printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

APT_UPDATED=
ensure_backports_source() {
  if grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then return; fi
  local uri
  uri=$(debian_mirror)
  say "enabling bookworm-backports from $uri"
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" \
    | "${SUDO[@]}" tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null
  APT_UPDATED=
}

apt_update_once() {
  [ -n "$APT_UPDATED" ] && return
  "${SUDO[@]}" apt-get update -q
  APT_UPDATED=1
}

# apt_install [-t SUITE] PKG...: installs the packages not yet installed.
apt_install() {
  local target=() missing=() p
  if [ "${1:-}" = -t ]; then target=(-t "$2"); shift 2; fi
  for p in "$@"; do [ -n "$(installed_version "$p")" ] || missing+=("$p"); done
  [ "${#missing[@]}" -eq 0 ] && return
  apt_update_once
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${target[@]}" "${missing[@]}"
}
