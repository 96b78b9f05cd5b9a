#!/bin/sh
# gen-certs.sh OUTDIR - the TLS tests' certificates, made at test time with
# the openssl command (no key or certificate is ever checked in). ECDSA
# P-256 keys throughout. Run by ctest as the fixture "tls_certs" into
# <build>/tests/tls-certs; tests get that directory in ALOOP_TLS_CERTS.
#
# The file names are stable (other tests rely on them):
#   ca.pem, ca.key              the test CA (trust it with set_ca_file)
#   server.pem, server.key      server certificate signed by the CA, for
#                               DNS:localhost, IP:127.0.0.1, IP:::1
#   client.pem, client.key      client certificate signed by the CA
#                               (CN=aloop test client, clientAuth)
#   expired.pem, expired.key    server certificate signed by the CA for the
#                               same names, expired (valid 2000-2001)
#   wrongname.pem, wrongname.key  server certificate signed by the CA for
#                               DNS:wrong.example only
#   untrusted.pem, untrusted.key  self-signed server certificate for
#                               localhost and 127.0.0.1 (no CA knows it)
#   other-ca.pem, other-ca.key  a second CA nobody trusts;
#   other-client.pem/.key       a client certificate signed by it
# Every certificate but the expired one is valid for 10 years from now.
set -eu
out=${1:?usage: gen-certs.sh OUTDIR}
mkdir -p "$out"
cd "$out"
days=3650
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ca() { # name subject
    key "$1.key"
    openssl req -x509 -new -key "$1.key" -subj "/CN=$2" -days $days -sha256 \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$1.pem" 2>/dev/null
}

leaf() { # name subject ca san usage [startdate enddate]
    key "$1.key"
    openssl req -new -key "$1.key" -subj "/CN=$2" -out "$tmp/$1.csr" 2>/dev/null
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\n' \
        "$5" > "$tmp/$1.ext"
    [ -n "$4" ] && printf 'subjectAltName=%s\n' "$4" >> "$tmp/$1.ext"
    if [ $# -ge 7 ]; then
        # a fixed validity in the past needs the ca command (x509 -req cannot)
        mkdir -p "$tmp/db"
        : > "$tmp/db/index"
        printf '[ca]\ndefault_ca=c\n[c]\ndatabase=%s/db/index\nnew_certs_dir=%s/db\nserial=%s/db/serial\npolicy=p\ndefault_md=sha256\nunique_subject=no\n[p]\ncommonName=supplied\n' \
            "$tmp" "$tmp" "$tmp" > "$tmp/ca.cnf"
        echo 01 > "$tmp/db/serial"
        openssl ca -batch -config "$tmp/ca.cnf" -cert "$3.pem" -keyfile "$3.key" \
            -in "$tmp/$1.csr" -out "$1.pem" -startdate "$6" -enddate "$7" \
            -extfile "$tmp/$1.ext" -notext 2>/dev/null
    else
        openssl x509 -req -in "$tmp/$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial \
            -days $days -sha256 -extfile "$tmp/$1.ext" -out "$1.pem" 2>/dev/null
    fi
}

names="DNS:localhost,IP:127.0.0.1,IP:::1"
ca ca "aloop test CA"
ca other-ca "aloop other CA"
leaf server localhost ca "$names" serverAuth
leaf client "aloop test client" ca "" clientAuth
leaf other-client "aloop other client" other-ca "" clientAuth
leaf wrongname wrong.example ca "DNS:wrong.example" serverAuth
leaf expired localhost ca "$names" serverAuth 20000101000000Z 20010101000000Z
key untrusted.key
openssl req -x509 -new -key untrusted.key -subj "/CN=localhost" -days $days -sha256 \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -out untrusted.pem 2>/dev/null
rm -f ./*.srl
echo "gen-certs: certificates in $out"
