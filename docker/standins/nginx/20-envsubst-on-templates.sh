#!/bin/sh
# What the official nginx image's script of this name does: render every
# /etc/nginx/templates/*.template into /etc/nginx/conf.d/ with envsubst,
# substituting only variables defined in the environment (so nginx's own
# $variables survive).
set -eu

template_dir="${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}"
output_dir="${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}"
suffix="${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}"

[ -d "$template_dir" ] || exit 0
defined_envs="$(printf '${%s} ' $(env | cut -d= -f1))"
for template in "$template_dir"/*"$suffix"; do
    [ -f "$template" ] || continue
    output="$output_dir/$(basename "$template" "$suffix")"
    envsubst "$defined_envs" < "$template" > "$output"
    echo "$0: rendered $template to $output"
done
