#!/bin/sh
# Picks the chat app's site when the nginx container starts, after the image has
# rendered /etc/nginx/templates into /etc/nginx/conf.d: HTTPS when a certificate
# and key are mounted in $TLS_DIR, plain HTTP otherwise.
set -eu

conf_dir="${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}"
tls_dir="${TLS_DIR:-/etc/nginx/tls}"

if [ -s "$tls_dir/tls.crt" ] && [ -s "$tls_dir/tls.key" ]; then
    mv "$conf_dir/chat-app-https.site" "$conf_dir/default.conf"
    echo "$0: serving HTTPS with $tls_dir/tls.crt; plain HTTP redirects to it"
else
    rm -f "$conf_dir/chat-app-https.site"
    echo "$0: no tls.crt and tls.key in $tls_dir: serving plain HTTP"
fi
