// Gateway: lets the SMTP session tell a passing identity-platform outage (454) from a needed reconnect (535).
import OAuth

extension OAuthError: TemporaryFailureClassifying {}
