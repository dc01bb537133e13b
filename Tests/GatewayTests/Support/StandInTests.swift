// GatewayTests/Support: the one parent of every suite that uses the Microsoft 365 stand-in.
import Testing

/// Every end-to-end suite that talks to the stand-in (integration/) is nested here, in an extension, so that they
/// run one after another: the stand-in's switches (autofile, token lifetime, SMTP AUTH per user, revocation) are
/// global to it, and two suites toggling them at once would see each other's settings.
@Suite("Against the Microsoft 365 stand-in", .serialized)
struct StandInTests {}
