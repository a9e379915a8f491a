export const HELP = `Gatehouse: one process that replaces nginx + oauth2-proxy.

Usage: gatehouse <command> [options]

Commands:
  serve              Load the configuration and serve (default when no command is given); exit 2 on an
                     invalid configuration or a listen address that cannot be bound
  check              Validate the configuration and exit, like nginx -t (exit 0 = valid, 2 = errors)
  certs list         Show every site's certificate: source, issuer, not-after, next renewal, last ACME error
  certs renew NAME   Order a new ACME certificate for the site NAME now (a running serve picks it up at once)
  import NGINX_CONF [OAUTH2_PROXY_CFG …] --out DIR [--force] [--allow-partial]
                     Translate an nginx configuration (or "nginx -T" output) and oauth2-proxy .cfg files
                     (and OAUTH2_PROXY_* variables) into DIR/gatehouse.toml + DIR/sites/*.toml, each line
                     commented with the file:line it came from. Whatever has no equivalent is listed as
                     file:line: directive: why and nothing is written (exit 1) unless --allow-partial; the
                     result must pass "check" (exit 2 otherwise); a non-empty DIR needs --force
  certs export --out DIR
                     Write every stored certificate and key (the [acme] folder, or Redis with [store]
                     backend = "redis") to DIR/<domain>/fullchain.pem and privkey.pem (0600)
  demo               Run the built-in demo: https://localhost:8443 in front of an echo backend, behind an
                     embedded identity provider (sign in as alice or bob, any password); writes its
                     self-signed certificate and generated config to ./certs/demo/; /public/ needs no login
  demo --upstream URL
                     The same in front of your own application (http:// or https:// origin): every page
                     asks for a login, and it receives the identity headers
  demo --print-config
                     Print the configuration the last demo wrote in ./certs/demo/, to start your own
  version            Print the version
  help               Print this text

Options:
  -c, --config DIR   Configuration folder holding gatehouse.toml and sites/*.toml (default: ./config)
  -p, --port N       demo only: the HTTPS port (default 8443; 0 picks a free one)
      --upstream URL demo only: your application instead of the echo backend
  -h, --help         Print this text

Signals: SIGTERM and SIGINT stop accepting connections, let in-flight requests finish within
[lifecycle] shutdown_grace (default 30s), then exit. A second signal exits at once. With workers > 1
(default: one per core) signal the primary; it stops the workers the same way. SIGHUP reloads the
configuration in place (with workers > 1, signal the primary: each worker reloads): listeners,
in-flight requests, WebSockets and HTTP/2 sessions stay open, new ones get the new configuration; an
invalid configuration is refused and logged, and the running one stays. A new workers count starts
new workers, then the old ones drain (a single process refuses it: restart to apply).
`;
