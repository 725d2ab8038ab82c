#!/usr/bin/env bash
# Create Kurier's RabbitMQ vhost and user (run once, as an administrator of the broker).
# Kurier declares its own exchange and queues at start-up.
set -euo pipefail
password="${1:?usage: rabbitmq-kurier.sh <password>}"
rabbitmqctl add_vhost kurier || true
rabbitmqctl add_user kurier "$password" || rabbitmqctl change_password kurier "$password"
rabbitmqctl set_permissions -p kurier kurier '^kurier.*' '^kurier.*' '^kurier.*'
