/*
 * config.c - TLS configurations: an SSL_CTX with our defaults (TLS 1.2 or
 * newer, no renegotiation, verification on for clients), ALPN, client
 * certificates, and the client's session cache.
 *
 * A config is referenced by its user, by each connection made with it and
 * by each server serving with it; it goes with the last reference, so the
 * user may free it while connections live.
 *
 * Session cache (clients): OpenSSL hands every new session to
 * new_session() (TLS 1.2 at the end of the handshake, TLS 1.3 when a
 * ticket arrives, which is after it); we keep the latest one per key
 * (name or address, port, and the checks made: conn.c), at most
 * MAX_SESSIONS keys (the oldest goes first), and the next connection to
 * that key offers it. OpenSSL's own client cache is
 * off: it is keyed by nothing useful for a client.
 */
#include "tls_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#define MAX_SESSIONS 256

void aloop__tls_config_ref(aloop_tls_config_t *c) { c->refs++; }

static void sessions_clear(aloop_tls_config_t *c) {
    for (size_t i = 0; i < c->nsessions; i++) {
        OPENSSL_free(c->sessions[i].key);
        SSL_SESSION_free(c->sessions[i].sess);
    }
    OPENSSL_free(c->sessions);
    c->sessions = NULL;
    c->nsessions = 0;
}

void aloop__tls_config_unref(aloop_tls_config_t *c) {
    if (--c->refs) return;
    sessions_clear(c);
    SSL_CTX_free(c->ctx);
    BIO_meth_free(c->bio);
    OPENSSL_free(c->alpn);
    OPENSSL_free(c);
}

void aloop_tls_config_free(aloop_tls_config_t *c) {
    if (c) aloop__tls_config_unref(c);
}

SSL_SESSION *aloop__tls_session_find(aloop_tls_config_t *c, const char *key) {
    for (size_t i = 0; i < c->nsessions; i++)
        if (strcmp(c->sessions[i].key, key) == 0) return c->sessions[i].sess;
    return NULL;
}

/* Keeps sess for key (replacing the one before): 1 if we took it. */
static int session_store(aloop_tls_config_t *c, const char *key, SSL_SESSION *sess) {
    for (size_t i = 0; i < c->nsessions; i++) {
        if (strcmp(c->sessions[i].key, key) != 0) continue;
        SSL_SESSION_free(c->sessions[i].sess);
        c->sessions[i].sess = sess;
        return 1;
    }
    char *k = OPENSSL_strdup(key);
    if (!k) return 0;
    if (c->nsessions == MAX_SESSIONS) { /* the oldest goes */
        OPENSSL_free(c->sessions[0].key);
        SSL_SESSION_free(c->sessions[0].sess);
        memmove(c->sessions, c->sessions + 1, (c->nsessions - 1) * sizeof *c->sessions);
        c->nsessions--;
    } else {
        tls_session_t *grown =
            OPENSSL_realloc(c->sessions, (c->nsessions + 1) * sizeof *c->sessions);
        if (!grown) {
            OPENSSL_free(k);
            return 0;
        }
        c->sessions = grown;
    }
    c->sessions[c->nsessions++] = (tls_session_t){.key = k, .sess = sess};
    return 1;
}

static int new_session(SSL *ssl, SSL_SESSION *sess) {
    tls_conn_t *conn = SSL_get_app_data(ssl);
    if (!conn || !conn->key || !conn->cfg->cache_on) return 0;
    return session_store(conn->cfg, conn->key, sess);
}

/* The server picks the first protocol of its own list the client offers. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg) {
    (void)ssl;
    aloop_tls_config_t *c = arg;
    unsigned char *sel;
    if (!c->alpn ||
        SSL_select_next_proto(&sel, outlen, c->alpn, (unsigned)c->alpn_len, in, inlen) !=
            OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static int accept_any(int ok, X509_STORE_CTX *x) {
    (void)ok;
    (void)x;
    return 1;
}

/* SSL_CTX's verify mode from ours. */
static void apply_verify(aloop_tls_config_t *c) {
    int mode = SSL_VERIFY_NONE;
    if (c->server && c->require_cert) mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    else if (!c->server && c->verify) mode = SSL_VERIFY_PEER;
    /* a server that requires a certificate but verifies nothing takes any */
    SSL_CTX_set_verify(c->ctx, mode, c->server && !c->verify ? accept_any : NULL);
    if (c->server) {
        /* a resumed handshake checks no certificate: a session made under
         * other checks (none asked, or none verified) must not resume, so
         * the checks are part of the session id context (which also makes
         * TLS 1.2 sessions resumable with client certificates) */
        char sid[32];
        int n = snprintf(sid, sizeof sid, "aloop-tls/%d%d", c->verify, c->require_cert);
        SSL_CTX_set_session_id_context(c->ctx, (const unsigned char *)sid, (unsigned)n);
    }
}

/* The system's CA certificates, found as SSL_CTX_set_default_verify_paths
 * finds them (the bundle file and the hashed directory; SSL_CERT_FILE and
 * SSL_CERT_DIR override), but without the OSSL_STORE lookup OpenSSL 3 adds
 * to those two: it lists the whole certificate directory again for every
 * chain it builds, on every handshake (~250 us of a client's CPU per full
 * handshake with /etc/ssl/certs). No system store (a container) is not an
 * error: set_ca_file may follow. */
static void load_system_cas(SSL_CTX *ctx) {
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    X509_LOOKUP *l = X509_STORE_add_lookup(store, X509_LOOKUP_file());
    if (l) X509_LOOKUP_load_file(l, NULL, X509_FILETYPE_DEFAULT);
    l = X509_STORE_add_lookup(store, X509_LOOKUP_hash_dir());
    if (l) X509_LOOKUP_add_dir(l, NULL, X509_FILETYPE_DEFAULT);
}

static aloop_tls_config_t *config_new(int server) {
    aloop_tls_config_t *c = OPENSSL_zalloc(sizeof *c);
    if (!c) goto nomem;
    c->refs = 1;
    c->server = (uint8_t)server;
    c->verify = 1;
    c->cache_on = !server;
    c->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    c->bio = aloop__tls_bio_method_new();
    if (!c->ctx || !c->bio) goto nomem;
    SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(c->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(c->ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (server) {
        SSL_CTX_set_alpn_select_cb(c->ctx, alpn_select, c);
    } else {
        SSL_CTX_set_session_cache_mode(c->ctx,
                                       SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(c->ctx, new_session);
        load_system_cas(c->ctx);
    }
    apply_verify(c);
    ERR_clear_error();
    return c;
nomem:
    if (c) {
        SSL_CTX_free(c->ctx);
        BIO_meth_free(c->bio);
        OPENSSL_free(c);
    }
    ERR_clear_error();
    errno = ENOMEM;
    return NULL;
}

aloop_tls_config_t *aloop_tls_client_config_new(void) { return config_new(0); }

/* 0 if path can be opened for reading, else -errno (ENOENT, EACCES). */
static int readable(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return errno ? -errno : -ENOENT;
    fclose(f);
    return 0;
}

/* Loads a chain and its key into ctx: 1 if both are good and match. */
static int use_cert(SSL_CTX *ctx, const char *cert_file, const char *key_file) {
    return SSL_CTX_use_certificate_chain_file(ctx, cert_file) == 1 &&
           SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) == 1 &&
           SSL_CTX_check_private_key(ctx) == 1;
}

/* Loads this side's chain and key into c: 0 or -errno. They are tried on
 * a context of their own first: a refused pair must leave c's own in place
 * (OpenSSL drops the key of a context whose new certificate does not match
 * it, and a server would serve no more). */
static int load_cert(aloop_tls_config_t *c, const char *cert_file, const char *key_file) {
    int rc = readable(cert_file);
    if (rc == 0) rc = readable(key_file);
    if (rc < 0) return rc;
    ERR_clear_error();
    SSL_CTX *trial = SSL_CTX_new(TLS_method());
    int ok = trial && use_cert(trial, cert_file, key_file);
    SSL_CTX_free(trial);
    if (!ok || !use_cert(c->ctx, cert_file, key_file)) {
        int nomem = ERR_GET_REASON(ERR_peek_error()) == ERR_R_MALLOC_FAILURE;
        aloop__tls_fail(NULL, SSL_ERROR_SSL, 0); /* the words; drains the queue */
        return nomem ? -ENOMEM : -EINVAL;
    }
    return 0;
}

aloop_tls_config_t *aloop_tls_server_config_new(const char *cert_file, const char *key_file) {
    if (!cert_file || !key_file) {
        errno = EINVAL;
        return NULL;
    }
    aloop_tls_config_t *c = config_new(1);
    if (!c) return NULL;
    int rc = load_cert(c, cert_file, key_file);
    if (rc < 0) {
        aloop__tls_config_unref(c);
        errno = -rc;
        return NULL;
    }
    return c;
}

int aloop_tls_config_set_ca_file(aloop_tls_config_t *c, const char *pem_file) {
    if (!c || !pem_file) return -EINVAL;
    int rc = readable(pem_file);
    if (rc < 0) return rc;
    ERR_clear_error();
    if (SSL_CTX_load_verify_locations(c->ctx, pem_file, NULL) != 1) {
        aloop__tls_fail(NULL, SSL_ERROR_SSL, 0);
        return -EINVAL;
    }
    if (c->server) { /* the CAs a server names when it asks for a certificate */
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(pem_file);
        if (names) SSL_CTX_set_client_CA_list(c->ctx, names);
    }
    ERR_clear_error();
    return 0;
}

int aloop_tls_config_set_verify(aloop_tls_config_t *c, int verify) {
    if (!c) return -EINVAL;
    c->verify = verify != 0;
    apply_verify(c);
    return 0;
}

int aloop_tls_config_require_client_cert(aloop_tls_config_t *c, int require) {
    if (!c || !c->server) return -EINVAL;
    c->require_cert = require != 0;
    apply_verify(c);
    return 0;
}

int aloop_tls_config_set_alpn(aloop_tls_config_t *c, const char *const *protos, size_t n) {
    if (!c || (n && !protos)) return -EINVAL;
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = protos[i] ? strlen(protos[i]) : 0;
        if (l == 0 || l > 255) return -EINVAL;
        len += 1 + l;
    }
    unsigned char *wire = NULL;
    if (n) {
        wire = OPENSSL_malloc(len);
        if (!wire) return -ENOMEM;
        unsigned char *p = wire;
        for (size_t i = 0; i < n; i++) {
            size_t l = strlen(protos[i]);
            *p++ = (unsigned char)l;
            memcpy(p, protos[i], l);
            p += l;
        }
    }
    /* a client offers the list in its ClientHello (0 is success here) */
    if (!c->server && SSL_CTX_set_alpn_protos(c->ctx, wire, (unsigned)len) != 0) {
        OPENSSL_free(wire);
        ERR_clear_error();
        return -ENOMEM;
    }
    OPENSSL_free(c->alpn);
    c->alpn = wire;
    c->alpn_len = len;
    return 0;
}

int aloop_tls_config_set_client_cert(aloop_tls_config_t *c, const char *cert_file,
                                     const char *key_file) {
    if (!c || !cert_file || !key_file) return -EINVAL;
    return load_cert(c, cert_file, key_file);
}

int aloop_tls_config_set_session_cache(aloop_tls_config_t *c, int on) {
    if (!c) return -EINVAL;
    c->cache_on = on != 0;
    if (!on) sessions_clear(c);
    return 0;
}
