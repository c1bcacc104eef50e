#!/usr/bin/env bash
# Install the system packages the tests need, on Debian or Ubuntu:
# rsyslog, which tests/sinks/test_syslog.py starts on 127.0.0.1, and its GnuTLS
# driver (rsyslog-gnutls) for the TLS tests. Packages already installed are left
# alone, so a second run changes nothing and needs no network.
set -euo pipefail

packages=(rsyslog rsyslog-gnutls)

missing=()
for package in "${packages[@]}"; do
    status=$(dpkg-query --show --showformat='${Status}' "$package" 2>/dev/null || true)
    if [[ $status != "install ok installed" ]]; then
        missing+=("$package")
    fi
done
if ((${#missing[@]} == 0)); then
    echo "install-test-tools: ${packages[*]} already installed"
    exit 0
fi

if ! command -v apt-get >/dev/null; then
    echo "install-test-tools: apt-get not found. Install ${missing[*]} with this system's package manager." >&2
    exit 1
fi
if ((EUID == 0)); then
    run_as_root=()
elif command -v sudo >/dev/null; then
    run_as_root=(sudo)
else
    echo "install-test-tools: run this script as root to install ${missing[*]}" >&2
    exit 1
fi

echo "install-test-tools: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${run_as_root[@]}" apt-get update -q
"${run_as_root[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
