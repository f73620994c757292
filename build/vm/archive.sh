# Sourced by the build/vm scripts: debian_archive prints the URI of the first Debian archive
# (not its security archive) of the machine's own apt sources, deb822 or one-line style, so
# no archive host name is written in the repository. DOCK_VM_ARCHIVE overrides it.
debian_archive() {
  local archive=${DOCK_VM_ARCHIVE:-} f
  if [ -z "$archive" ]; then
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] || continue
      archive=$(awk 'tolower($1)=="uris:" { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f")
      [ -n "$archive" ] && break
    done
  fi
  if [ -z "$archive" ]; then
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [ -f "$f" ] || continue
      archive=$(awk '$1=="deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { if ($i !~ /security/) { print $i; exit } break } }' "$f")
      [ -n "$archive" ] && break
    done
  fi
  if [ -z "$archive" ]; then
    echo "no Debian archive in the machine's apt sources (set DOCK_VM_ARCHIVE)" >&2
    return 1
  fi
  echo "$archive"
}
