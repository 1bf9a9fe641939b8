# gunicorn settings for the portal; see deploy/systemd/etrepo-web.service.
bind = "unix:/run/etrepo/web.sock"
workers = 3
threads = 4
worker_class = "gthread"
timeout = 30
graceful_timeout = 20
# The app is loaded once, in the master, before the workers are forked: a refusal (root, a
# wrong setting, the schema) is then one line and exit status 4, where otherwise every worker
# would say it and gunicorn's arbiter can trip over the second (a traceback and exit 1).
# A reload (HUP) keeps the loaded code: after an upgrade, `systemctl restart etrepo-web`.
preload_app = True
# Request bodies are capped by the app (MAX_REQUEST_BYTES) and by nginx (client_max_body_size).
limit_request_line = 8190
# Both to the journal. The app's own lines (etrepo.*) go to stdout in its format
# ("2026-01-01 12:00:00,000 INFO etrepo.accounts.service: ...").
accesslog = "-"
errorlog = "-"
# Behind nginx the peer is always nginx itself: log the client address from X-Forwarded-For
# (its last address is the one nginx saw; any before it were sent by the client), then
# gunicorn's usual fields.
access_log_format = '%({x-forwarded-for}i)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
# Trust X-Forwarded-* only from nginx on this host (the app's TRUSTED_PROXIES=1 does the rest).
forwarded_allow_ips = "127.0.0.1"
# gunicorn 25.1+ opens a control socket (for `gunicornc`) in ~/.gunicorn by default, which the
# web user cannot write (ProtectHome=yes, a system user's home): an ERROR at every start.
# `systemctl reload etrepo-web` (HUP: new workers) and `restart` are all the portal needs.
control_socket_disable = True
