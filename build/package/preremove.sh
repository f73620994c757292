#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl stop dock-agent.service >/dev/null 2>&1 || true
  systemctl disable dock-agent.service >/dev/null 2>&1 || true
fi
# The spool and ledger in /var/lib/dock-agent are evidence: never removed by the package.
