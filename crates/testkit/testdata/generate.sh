#!/bin/sh
# Makes the fake API server's TLS files in this directory (run from anywhere; needs openssl):
#   fake-apiserver-ca.pem         the test CA's certificate (the kubeconfig's certificate-authority)
#   fake-apiserver.pem            the server's certificate, signed by that CA, for 127.0.0.1,
#                                 ::1 and localhost (every test binds its fake on 127.0.0.1)
#   fake-apiserver-key.pem        the server's private key (PKCS#8)
#   other-ca.pem                  an unrelated CA's certificate, for the tests of a kubeconfig
#                                 that names the wrong CA
# All valid for 100 years (36500 days) from the day they were made. The CA keys are not kept:
# the files are test fixtures, regenerated together when they need to change.
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
days=36500
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
# shellcheck disable=SC2086
openssl req -x509 $ec -keyout "$tmp/ca-key.pem" -out fake-apiserver-ca.pem -days $days \
    -subj "/CN=kube-ipvs-proxy fake API server CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
# shellcheck disable=SC2086
openssl req -x509 $ec -keyout "$tmp/other-key.pem" -out other-ca.pem -days $days \
    -subj "/CN=kube-ipvs-proxy unrelated test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
# shellcheck disable=SC2086
openssl req $ec -keyout "$tmp/server-key.pem" -out "$tmp/server.csr" -subj "/CN=fake-apiserver"
printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost" >"$tmp/ext"
openssl x509 -req -in "$tmp/server.csr" -CA fake-apiserver-ca.pem -CAkey "$tmp/ca-key.pem" \
    -CAcreateserial -CAserial "$tmp/ca.srl" -days $days -extfile "$tmp/ext" -out fake-apiserver.pem
openssl pkcs8 -topk8 -nocrypt -in "$tmp/server-key.pem" -out fake-apiserver-key.pem
