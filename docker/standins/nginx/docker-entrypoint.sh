#!/bin/sh
# What the official nginx image does at start (20-envsubst-on-templates.sh): render
# every /etc/nginx/templates/*.template into /etc/nginx/conf.d/ with envsubst,
# substituting only variables that are defined in the environment (so nginx's own
# $variables survive), then run the command.
set -eu

template_dir="${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}"
output_dir="${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}"
suffix="${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}"

if [ "${1:-}" = nginx ] && [ -d "$template_dir" ]; then
    defined_envs="$(printf '${%s} ' $(env | cut -d= -f1))"
    for template in "$template_dir"/*"$suffix"; do
        [ -f "$template" ] || continue
        output="$output_dir/$(basename "$template" "$suffix")"
        envsubst "$defined_envs" < "$template" > "$output"
        echo "$0: rendered $template to $output"
    done
fi

exec "$@"
