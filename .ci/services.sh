#!/usr/bin/env bash
# Start any backing service the tests need that is not already answering.
set -u
up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_up() { for _ in $(seq 1 60); do up "$1" && return 0; sleep 1; done; echo "service on port $1 did not start" >&2; return 1; }

if ! up 6379; then
  echo "starting redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  wait_up 6379
fi
if ! up 5672; then
  echo "starting rabbitmq"
  rabbitmq-server -detached >/dev/null 2>&1
  wait_up 5672
fi
if ! up 5432; then
  echo "starting postgresql"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  wait_up 5432
fi
exit 0
