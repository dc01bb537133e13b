/* COpenSSL: the system OpenSSL (libssl, libcrypto) for Swift.
 * Only macros that Swift cannot import get a wrapper here; each says why. Everything else is used directly. */
#ifndef MAILGATE_COPENSSL_SHIM_H
#define MAILGATE_COPENSSL_SHIM_H

#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/x509_vfy.h>
#include <openssl/pem.h>
#include <openssl/bio.h>
#include <openssl/kdf.h>
#include <openssl/ts.h>

/* SSL_CTX_set_min_proto_version is a macro over SSL_CTX_ctrl (ssl.h), so Swift does not see it.
 * Used to refuse anything older than TLS 1.2 on both sides. Returns 1 on success. */
static inline int mailgate_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_min_proto_version(ctx, version);
}

/* SSL_CTX_set_max_proto_version is a macro over SSL_CTX_ctrl (ssl.h).
 * Used only by tests that build a deliberately outdated peer. Returns 1 on success. */
static inline int mailgate_SSL_CTX_set_max_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_max_proto_version(ctx, version);
}

/* SSL_set_tlsext_host_name is a macro over SSL_ctrl (tls1.h) that casts away const.
 * Sets the SNI name a client sends. Returns 1 on success. */
static inline int mailgate_SSL_set_tlsext_host_name(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

#endif
