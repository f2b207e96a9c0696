# Sourced by the proxy benchmarks (bench.sh, bench-proxy-cpu.sh, bench-proxy-instructions.sh,
# bench-memory.sh for traefik_toml and boma_toml):
# the backend and the configuration each proxy gets, written in one place so that every script
# measures the same setup. Needs `work` (a scratch directory) and the ports BACKEND_PORT,
# NGINX_PORT, TRAEFIK_PORT and BOMA_PORT set; NGINX_WORKERS (default auto) and, for one more
# nginx configuration, NGINX_FIELDS=1. Also gives wait_http, which every script waits with.
#
# Writes:
#   $work/backend/nginx.conf   nginx answering "hello, world\n" (13 bytes) on BACKEND_PORT
#   $work/proxy/nginx.conf     nginx proxying to it, setting Host and X-Forwarded-For
#   $work/proxy/nginx-fields.conf  the same, also setting the fields boma and Traefik set
#                              (X-Forwarded-Host, -Port, -Proto, -Server, X-Real-Ip)
#   $work/dynamic.toml         the router and service Traefik and boma share
#   $work/traefik.toml         Traefik on TRAEFIK_PORT
#   $work/boma.toml            boma on BOMA_PORT
# Run nginx with `-g 'daemon off;'` (and `master_process off;` under valgrind).
bench_configs() {
  mkdir -p "$work/backend" "$work/proxy"
  cat > "$work/backend/nginx.conf" <<EOF
worker_processes 1;
pid $work/backend/nginx.pid;
error_log $work/backend/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/backend;
  server {
    listen 127.0.0.1:$BACKEND_PORT reuseport;
    keepalive_requests 1000000;
    location / { return 200 "hello, world\n"; }
  }
}
EOF
  local fields name
  for name in nginx nginx-fields; do
    fields=""
    [ "$name" = nginx ] || fields='proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Forwarded-Port $server_port;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Server $hostname;
      proxy_set_header X-Real-Ip $remote_addr;'
    cat > "$work/proxy/$name.conf" <<EOF
worker_processes ${NGINX_WORKERS:-auto};
worker_rlimit_nofile 8192;
pid $work/proxy/nginx.pid;
error_log $work/proxy/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/proxy;
  proxy_temp_path $work/proxy;
  upstream backend { server 127.0.0.1:$BACKEND_PORT; keepalive 64; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    server_name bench.local;
    keepalive_requests 1000000;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      $fields
    }
  }
}
EOF
  done
  cat > "$work/dynamic.toml" <<EOF
[http.routers.bench]
rule = "Host(\`bench.local\`)"
service = "backend"

[http.services.backend.loadBalancer]
[[http.services.backend.loadBalancer.servers]]
url = "http://127.0.0.1:$BACKEND_PORT"
EOF
  traefik_toml "$TRAEFIK_PORT" "$work/dynamic.toml" > "$work/traefik.toml"
  boma_toml "$BOMA_PORT" "$work/dynamic.toml" > "$work/boma.toml"
}

# boma's configuration: one entry point on PORT, the file provider reading DYNAMIC, then any
# further sections given as EXTRA (TOML text).
boma_toml() { # port dynamic [extra]
  cat <<EOF
[entryPoints.web]
address = "127.0.0.1:$1"
[providers.file]
filename = "$2"
${3:-}
[log]
level = "warn"
EOF
}

# Traefik's static configuration: one entry point on PORT, the file provider reading DYNAMIC.
traefik_toml() { # port dynamic
  cat <<EOF
[entryPoints.web]
address = "127.0.0.1:$1"
[providers.file]
filename = "$2"
[log]
level = "ERROR"
[global]
sendAnonymousUsage = false
checkNewVersion = false
EOF
}

# Wait until URL answers 2xx to a request for Host HOST, trying TRIES times 0.1 s apart
# (default 100); otherwise end the calling script with a message naming it.
wait_http() { # url host [tries]
  local _
  for _ in $(seq 1 "${3:-100}"); do
    curl -fs -o /dev/null -H "Host: $2" "$1" && return 0
    sleep 0.1
  done
  echo "$(basename "$0"): $1 (Host $2) never answered" >&2; exit 1
}
