extension Sequence where Element == UInt8 {
    /// Lower-case hex, as 123 Open, Alist and HTTP headers write digests.
    public var hexString: String { map { String(format: "%02x", $0) }.joined() }
}

import Foundation
