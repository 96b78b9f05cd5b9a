/*
 * aloop_tls.h - TLS for libaloop (the companion library aloop-tls, over
 * OpenSSL 3; pkg-config aloop-tls, CMake aloop::tls).
 *
 * A TLS connection is an ordinary aloop_stream_t: after aloop_tls_connect
 * or aloop_tls_accept, every aloop_stream_* call works on it (read,
 * readuntil, readline, readexactly, write, copy, shutdown, close) with the
 * same one-reader-one-writer, cancellation and fairness rules as a plain
 * stream. The library sits on aloop.h's stream transport interface only.
 *
 * Errors, on every call that moves bytes (handshakes included):
 *   -EPROTO        the handshake failed, or a record was bad (the peer is
 *                  not speaking TLS, no common protocol or cipher, a
 *                  renegotiation attempt, a fatal alert from the peer);
 *   -EKEYREJECTED  a certificate was refused: the peer's is not trusted,
 *                  has expired, or does not match the name; or the peer
 *                  refused ours (an alert such as "unknown ca", or a client
 *                  certificate it requires and we did not send);
 *   -ECONNRESET    the peer vanished without close_notify (truncation is
 *                  never silent), or the connection was reset;
 *   0 (EOF)        a read after the peer's close_notify; this side may
 *                  still write (TLS 1.3 half-close);
 *   -ETIMEDOUT     a handshake's deadline passed; -ECANCELED: cancelled;
 *   -ENOMEM, -EINVAL (NULL arguments), -EPERM (outside a task).
 * A connection that failed with -EPROTO, -EKEYREJECTED or -ECONNRESET keeps
 * returning that error. aloop_tls_error() says in words what went wrong.
 *
 * Cancellation: a cancelled handshake closes the stream and frees
 * everything; a cancelled read keeps the decrypted bytes for the next read;
 * a cancelled write may have sent a prefix of its bytes (whole records), as
 * a plain socket's would.
 *
 * aloop_stream_close on a TLS stream sends close_notify if the kernel takes
 * it at once (it never waits), so a peer does not see a truncation.
 *
 * Memory: aloop-tls allocates with OPENSSL_malloc, so OpenSSL's
 * CRYPTO_set_mem_functions (called before anything else of OpenSSL's)
 * routes all TLS memory through a program's allocator; aloop_set_allocator
 * covers libaloop's. Allocation failure is -ENOMEM (or -EPROTO where
 * OpenSSL reports a failed handshake without saying why).
 */
#ifndef ALOOP_TLS_H
#define ALOOP_TLS_H

#include <aloop.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && !defined(_WIN32)
#define ALOOP_TLS_API __attribute__((visibility("default")))
#else
#define ALOOP_TLS_API
#endif

/* A configuration: an OpenSSL context plus our settings, shared by any
 * number of connections (each holds a reference: freeing the config while
 * connections live is fine). Set it up before the first handshake that
 * uses it; changing it afterwards affects later handshakes only. Not for
 * use from several threads at once. */
typedef struct aloop_tls_config aloop_tls_config_t;

/* A client configuration: verifies the server against the system's CA
 * store (SSL_CTX_set_default_verify_paths) and the name given at connect,
 * TLS 1.2 or newer, renegotiation refused, session resumption on (sessions
 * kept per server name and port, see aloop_tls_resumed). NULL + errno
 * (ENOMEM). */
ALOOP_TLS_API aloop_tls_config_t *aloop_tls_client_config_new(void);

/* A server configuration with the certificate chain (PEM, leaf first) and
 * private key (PEM) of the given files; TLS 1.2 or newer, no client
 * certificate asked. NULL + errno: EINVAL (a NULL argument, a file that is
 * not PEM, a key that does not match the certificate), ENOENT, EACCES,
 * ENOMEM. */
ALOOP_TLS_API aloop_tls_config_t *aloop_tls_server_config_new(const char *cert_file,
                                                              const char *key_file);

/* Trust the CA certificates in pem_file (in addition to the system store
 * for clients; the only ones for a server checking client certificates).
 * 0, -EINVAL (NULL, not PEM), -ENOENT, -EACCES. */
ALOOP_TLS_API int aloop_tls_config_set_ca_file(aloop_tls_config_t *c, const char *pem_file);

/* verify 0: accept any peer certificate, any name (testing only); 1 (the
 * default): verify. On a server it applies to the client certificates
 * aloop_tls_config_require_client_cert asks for (0: any is taken). 0,
 * -EINVAL. */
ALOOP_TLS_API int aloop_tls_config_set_verify(aloop_tls_config_t *c, int verify);

/* ALPN protocols, most preferred first ("h2", "http/1.1"): a client offers
 * them, a server picks the first of its own list the client offers (none in
 * common: the handshake goes on without ALPN). Each 1..255 bytes; n == 0
 * clears. 0, -EINVAL, -ENOMEM. */
ALOOP_TLS_API int aloop_tls_config_set_alpn(aloop_tls_config_t *c, const char *const *protos,
                                            size_t n);

/* The certificate chain and key this side presents: a client's certificate
 * when the server asks for one (a server's own are given at creation; on a
 * server this replaces them). 0, -EINVAL, -ENOENT, -EACCES, -ENOMEM. */
ALOOP_TLS_API int aloop_tls_config_set_client_cert(aloop_tls_config_t *c, const char *cert_file,
                                                   const char *key_file);

/* Server: require 1 asks every client for a certificate and fails the
 * handshake (-EKEYREJECTED) without one, or with one not signed by a CA of
 * aloop_tls_config_set_ca_file. 0 (the default) asks for none. 0, -EINVAL
 * (also on a client config). */
ALOOP_TLS_API int aloop_tls_config_require_client_cert(aloop_tls_config_t *c, int require);

/* Client: on (the default) keeps the session of each server (name and port)
 * the config has connected to, TLS 1.3 tickets and TLS 1.2 session ids
 * alike, so the next connection there resumes it (an abbreviated
 * handshake) if it makes the same checks (verification on or off, a name
 * or none: a resumed handshake checks no certificate). A server resumes
 * only sessions made under its current verify and client-certificate
 * settings. 0 turns it off and forgets the sessions. 0, -EINVAL. */
ALOOP_TLS_API int aloop_tls_config_set_session_cache(aloop_tls_config_t *c, int on);

/* Drops the caller's reference; the config goes when its last connection
 * has closed. NULL is ignored. */
ALOOP_TLS_API void aloop_tls_config_free(aloop_tls_config_t *c);

/* Client handshake over the connected stream s, within timeout seconds
 * (< 0: none). s is taken over: on success it lives on as *out (the same
 * stream, now encrypted); on failure it is closed and *out is NULL.
 * server_name: sent as SNI (unless an IP address) and checked against the
 * certificate (a DNS name against its DNS SANs, an IP address against its
 * IP SANs); NULL: no SNI and no name check. Bytes s had already buffered
 * unread before the call are not part of the TLS connection: start the
 * handshake before the peer sends TLS bytes (STARTTLS: after reading the
 * last plain reply). 0, or -EKEYREJECTED, -EPROTO, -ECONNRESET, -ETIMEDOUT,
 * -ECANCELED, -ENOMEM, -EINVAL (NULL s, c or out, a server config, a stream
 * that already has a transport, a server_name of 0 or more than 255
 * bytes), -EBUSY (another task is reading or writing s), -EBADF (s was
 * closed), -EPERM outside a task. */
ALOOP_TLS_API int aloop_tls_connect(aloop_stream_t *s, aloop_tls_config_t *c,
                                    const char *server_name, double timeout,
                                    aloop_stream_t **out);

/* Server handshake over the accepted stream s: as aloop_tls_connect (s is
 * taken over; -EINVAL for a client config). */
ALOOP_TLS_API int aloop_tls_accept(aloop_stream_t *s, aloop_tls_config_t *c, double timeout,
                                   aloop_stream_t **out);

/* aloop_open_connection then aloop_tls_connect under one deadline (lookup,
 * every connection attempt and the handshake): host is also the name
 * checked and sent as SNI. 0 and *out, or the errors of both. */
ALOOP_TLS_API int aloop_open_tls_connection(const char *host, const char *port,
                                            aloop_tls_config_t *c, double timeout,
                                            aloop_stream_t **out);

/* aloop_serve_with for TLS: each connection's handshake runs in its
 * handler task within opts->handshake_timeout (0: 60 s); a connection whose
 * handshake fails or times out is closed at once and never reaches the
 * handler, which gets only streams that finished their handshake. opts NULL
 * = defaults. c is referenced by the server (it may be freed meanwhile).
 * NULL + errno: as aloop_serve_with, EINVAL for a client config. */
ALOOP_TLS_API aloop_server_t *aloop_serve_tls(aloop_t *loop, int listen_fd,
                                              aloop_tls_config_t *c,
                                              const aloop_serve_opts_t *opts,
                                              aloop_conn_fn handler, void *arg);

/* The protocol version of s's connection ("TLSv1.3", "TLSv1.2"); NULL if s
 * is not a TLS stream. */
ALOOP_TLS_API const char *aloop_tls_version(const aloop_stream_t *s);

/* The ALPN protocol negotiated on s (NUL-terminated, valid while s lives),
 * or NULL (none, or not a TLS stream). */
ALOOP_TLS_API const char *aloop_tls_alpn(const aloop_stream_t *s);

/* 1 if s's handshake resumed an earlier session (no certificate was sent
 * or checked: the first connection did that), 0 if it was a full one, or
 * if s is not a TLS stream. */
ALOOP_TLS_API int aloop_tls_resumed(const aloop_stream_t *s);

/* Text of the last TLS failure on this thread, for people: OpenSSL's reason
 * ("certificate verify failed: certificate has expired", "wrong version
 * number", "unexpected eof while reading"), or "" if none yet. Valid until
 * the next failure on this thread. */
ALOOP_TLS_API const char *aloop_tls_error(void);

#ifdef __cplusplus
}
#endif

#endif /* ALOOP_TLS_H */
