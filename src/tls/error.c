/*
 * error.c - OpenSSL's failures as one -errno each, and their words.
 *
 * The mapping (aloop_tls.h): a certificate refused on either side is
 * -EKEYREJECTED, a peer that vanished mid-stream -ECONNRESET, memory
 * -ENOMEM, anything else the protocol rejected -EPROTO. The error queue is
 * per thread and OpenSSL leaves entries on it; every call into an SSL
 * object clears it first and every failure drains it here, so one
 * connection's error never shows up as another's.
 */
#include "tls_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

/* The only state of the library: the words of this thread's last failure,
 * as errno is (aloop_tls_error). */
static _Thread_local char last_error[256];

const char *aloop_tls_error(void) { return last_error; }

void aloop__tls_set_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
}

/* Alerts and reasons that say a certificate was refused, by us or the peer. */
static int is_cert_reason(int reason) {
    switch (reason) {
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
        return 1;
    default:
        return 0;
    }
}

static int fail_io(int io_errno) {
    if (io_errno) {
        aloop__tls_set_error("%s", strerror(io_errno));
        return io_errno == EPIPE ? -ECONNRESET : -io_errno;
    }
    aloop__tls_set_error("unexpected eof while reading");
    return -ECONNRESET;
}

int aloop__tls_fail(SSL *ssl, int ssl_err, int io_errno) {
    unsigned long e = ERR_peek_error();
    int rc;
    if (ssl_err == SSL_ERROR_SYSCALL || (ssl_err == SSL_ERROR_SSL && e == 0)) {
        rc = fail_io(io_errno);
    } else {
        int reason = ERR_GET_REASON(e);
        long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
        char words[160];
        ERR_error_string_n(e, words, sizeof words);
        const char *why = ERR_reason_error_string(e);
        if (!why) why = words;
        if (ERR_GET_LIB(e) == ERR_LIB_SSL && reason == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
            rc = -ECONNRESET;
            aloop__tls_set_error("%s", why);
        } else if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED && vr != X509_V_OK) {
            rc = -EKEYREJECTED;
            aloop__tls_set_error("%s: %s", why, X509_verify_cert_error_string(vr));
        } else if (ERR_GET_LIB(e) == ERR_LIB_SSL && is_cert_reason(reason)) {
            rc = -EKEYREJECTED;
            aloop__tls_set_error("%s", why);
        } else if (reason == ERR_R_MALLOC_FAILURE) {
            rc = -ENOMEM;
            aloop__tls_set_error("%s", why);
        } else {
            rc = -EPROTO;
            aloop__tls_set_error("%s", why);
        }
    }
    ERR_clear_error();
    return rc;
}
