#!/usr/bin/env bash
# certs/make-test-certs.sh: makes throwaway TLS material with the openssl command line.
#
#   make-test-certs.sh [OUTDIR]
#       Test set (default OUTDIR: certs/out): a throwaway CA and leaves signed by it:
#         ca.pem / ca.key                 the test CA (trust it with caFile)
#         localhost.pem / localhost.key   SAN DNS:localhost, IP:127.0.0.1
#         wrong-host.pem / wrong-host.key SAN DNS:wrong.example (for host name mismatch tests)
#         expired.pem / expired.key       SAN DNS:localhost, IP:127.0.0.1, expired in 2020
#       The .pem files of the leaves hold the leaf only (no intermediates exist).
#
#   make-test-certs.sh --gateway HOSTNAME [--ip ADDRESS]... [--out DIR] [--days N]
#       For an administrator: a certificate for MailGate's own listeners (STARTTLS/TLS for LAN clients),
#       signed by a local CA that is created once in DIR (default: the certs/ folder) and reused:
#         mailgate-ca.pem / mailgate-ca.key  the local CA: install mailgate-ca.pem on client devices
#         gateway.pem / gateway.key          for `certificate` / `private_key` in mailgate.toml
#       SAN: DNS:HOSTNAME (or IP:HOSTNAME for an IP literal) plus each --ip. Keys are RSA 2048 for old devices.
set -euo pipefail
umask 077

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() { echo "make-test-certs.sh: $*" >&2; exit 1; }

command -v openssl >/dev/null 2>&1 || die "the openssl command is required (apt-get install openssl)"

# Writes an `openssl ca` configuration for a CA in $1 (cert $2, key $3) to stdout.
ca_config() {
    cat <<CONF
[ ca ]
default_ca = local_ca
[ local_ca ]
dir = $1
database = \$dir/index.txt
new_certs_dir = \$dir/issued
serial = \$dir/serial
certificate = $2
private_key = $3
default_md = sha256
policy = any_policy
copy_extensions = none
unique_subject = no
email_in_dn = no
[ any_policy ]
commonName = supplied
[ leaf_extensions ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
subjectAltName = \${ENV::MAILGATE_SAN}
CONF
}

# make_key FILE TYPE (ec | rsa)
make_key() {
    if [ "$2" = rsa ]; then
        openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null
    else
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"
    fi
}

# make_ca CERT KEY COMMON_NAME DAYS KEYTYPE
make_ca() {
    make_key "$2" "$5"
    openssl req -new -x509 -key "$2" -out "$1" -days "$4" -sha256 -subj "/CN=$3" \
        -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash"
}

# sign_leaf WORKDIR CA_CERT CA_KEY NAME COMMON_NAME SAN KEYTYPE CERT_OUT KEY_OUT (START END | DAYS)
sign_leaf() {
    local work=$1 ca_cert=$2 ca_key=$3 name=$4 cn=$5 san=$6 keytype=$7 cert_out=$8 key_out=$9
    shift 9
    mkdir -p "$work/issued"
    [ -f "$work/index.txt" ] || : > "$work/index.txt"
    [ -f "$work/serial" ] || openssl rand -hex 16 > "$work/serial"
    ca_config "$work" "$ca_cert" "$ca_key" > "$work/ca.cnf"
    make_key "$key_out" "$keytype"
    openssl req -new -key "$key_out" -out "$work/$name.csr" -subj "/CN=$cn"
    local validity
    if [ $# -eq 2 ]; then
        validity=(-startdate "$1" -enddate "$2")
    else
        validity=(-days "$1")
    fi
    MAILGATE_SAN=$san openssl ca -batch -notext -config "$work/ca.cnf" -extensions leaf_extensions \
        "${validity[@]}" -in "$work/$name.csr" -out "$cert_out" 2>/dev/null \
        || die "openssl ca could not sign $name"
    rm -f "$work/$name.csr"
}

is_ip_literal() {
    [[ $1 =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ || $1 == *:* ]]
}

if [ "${1:-}" = "--gateway" ]; then
    shift
    [ $# -ge 1 ] && [ -n "$1" ] || die "usage: make-test-certs.sh --gateway HOSTNAME [--ip ADDRESS]... [--out DIR] [--days N]"
    host=$1
    shift
    [[ $host =~ ^[A-Za-z0-9.:-]+$ ]] || die "'$host' is not a host name or IP address"
    out=$script_dir
    days=825
    if is_ip_literal "$host"; then san="IP:$host"; else san="DNS:$host"; fi
    while [ $# -gt 0 ]; do
        case $1 in
            --ip) [ $# -ge 2 ] || die "--ip needs an address"; san="$san,IP:$2"; shift 2 ;;
            --out) [ $# -ge 2 ] || die "--out needs a directory"; out=$2; shift 2 ;;
            --days) [ $# -ge 2 ] || die "--days needs a number"; days=$2; shift 2 ;;
            *) die "unknown option $1" ;;
        esac
    done
    [[ $days =~ ^[0-9]+$ ]] || die "--days must be a number"
    mkdir -p "$out"
    out=$(cd "$out" && pwd)
    work="$out/.mailgate-ca"
    mkdir -p "$work"
    if [ ! -f "$out/mailgate-ca.pem" ] || [ ! -f "$out/mailgate-ca.key" ]; then
        make_ca "$out/mailgate-ca.pem" "$out/mailgate-ca.key" "MailGate local CA (${HOSTNAME:-gateway})" 3650 rsa
        echo "Created the local CA $out/mailgate-ca.pem (install it as trusted on client devices)."
    else
        echo "Reusing the local CA $out/mailgate-ca.pem."
    fi
    sign_leaf "$work" "$out/mailgate-ca.pem" "$out/mailgate-ca.key" gateway "$host" "$san" rsa \
        "$out/gateway.pem" "$out/gateway.key" "$days"
    chmod 0644 "$out/gateway.pem" "$out/mailgate-ca.pem"
    chmod 0600 "$out/gateway.key" "$out/mailgate-ca.key"
    cat <<DONE
Created $out/gateway.pem and $out/gateway.key for $san, valid $days days.
In mailgate.toml:
  certificate = "$out/gateway.pem"
  private_key = "$out/gateway.key"
Keep mailgate-ca.key private (it can sign certificates your clients will trust).
DONE
    exit 0
fi

case ${1:-} in
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    -*) die "unknown option $1" ;;
esac

out=${1:-$script_dir/out}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work="$out/.ca"
rm -rf "$work"
mkdir -p "$work"

make_ca "$out/ca.pem" "$out/ca.key" "MailGate throwaway test CA" 3650 ec
sign_leaf "$work" "$out/ca.pem" "$out/ca.key" localhost localhost "DNS:localhost,IP:127.0.0.1" ec \
    "$out/localhost.pem" "$out/localhost.key" 3650
sign_leaf "$work" "$out/ca.pem" "$out/ca.key" wrong-host wrong.example "DNS:wrong.example" ec \
    "$out/wrong-host.pem" "$out/wrong-host.key" 3650
sign_leaf "$work" "$out/ca.pem" "$out/ca.key" expired localhost "DNS:localhost,IP:127.0.0.1" ec \
    "$out/expired.pem" "$out/expired.key" 20200101000000Z 20200102000000Z
rm -rf "$work"
echo "Test certificates written to $out"
