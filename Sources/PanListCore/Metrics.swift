import Foundation
import Prometheus

/// PanList's metrics, in one Prometheus registry per process (served at `/metrics`, see docs/DEPLOY.md).
/// Series whose labels are fixed are made once; the others are looked up by the registry (a lock and a
/// dictionary), with labels from small, bounded sets only (routes, methods, statuses, drivers, endpoints).
public enum Metrics {
    public static let registry = PrometheusCollectorRegistry()

    public static func counter(_ name: String, _ help: String, _ labels: [(String, String)] = []) -> Counter {
        let d = MetricNameDescriptor(metricName: name, helpText: help)
        return labels.isEmpty ? registry.makeCounter(descriptor: d) : registry.makeCounter(descriptor: d, labels: labels)
    }

    public static func histogram(_ name: String, _ help: String, _ labels: [(String, String)] = [],
                                 buckets: [Duration] = latencyBuckets) -> DurationHistogram {
        let d = MetricNameDescriptor(metricName: name, unitName: "seconds", helpText: help)
        return labels.isEmpty ? registry.makeDurationHistogram(descriptor: d, buckets: buckets)
            : registry.makeDurationHistogram(descriptor: d, labels: labels, buckets: buckets)
    }

    public static func gauge(_ name: String, _ help: String, _ labels: [(String, String)] = []) -> Gauge {
        let d = MetricNameDescriptor(metricName: name, helpText: help)
        return labels.isEmpty ? registry.makeGauge(descriptor: d) : registry.makeGauge(descriptor: d, labels: labels)
    }

    public static let latencyBuckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2),
        .seconds(5), .seconds(10), .seconds(30),
    ]

    // MARK: caches

    public struct CacheCounters: Sendable {
        public let hit: Counter
        public let miss: Counter
        init(_ cache: String) {
            let help = "Cache lookups by cache (listing, link, user, webdav_credentials) and result (hit, miss)"
            hit = Metrics.counter("panlist_cache_lookups_total", help, [("cache", cache), ("result", "hit")])
            miss = Metrics.counter("panlist_cache_lookups_total", help, [("cache", cache), ("result", "miss")])
        }
        public func record(hit isHit: Bool) { (isHit ? hit : miss).increment() }
    }
    public static let listingCache = CacheCounters("listing")
    public static let linkCache = CacheCounters("link")
    public static let userCache = CacheCounters("user")
    public static let credentialCache = CacheCounters("webdav_credentials")

    // MARK: upstream

    /// A call to a cloud's API: `outcome` is ok, 401, 429, error (any other refusal) or unreachable.
    public static func upstreamCall(driver: String, endpoint: String, outcome: String) {
        counter("panlist_upstream_requests_total", "Calls to cloud APIs by driver, endpoint and outcome (ok, 401, 429, error, unreachable)",
                [("driver", driver), ("endpoint", endpoint), ("outcome", outcome)]).increment()
    }

    /// A token refresh: `outcome` is fetched (an access_token call), shared (another instance's token taken
    /// from the store) or failed.
    public static func tokenRefresh(driver: String, outcome: String) {
        counter("panlist_token_refreshes_total", "Cloud token refreshes by driver and outcome (fetched, shared, failed)",
                [("driver", driver), ("outcome", outcome)]).increment()
    }

    // MARK: store

    public static let storeLatency = histogram("panlist_store_query_duration", "Time taken by database statements")
    public static let storeErrors = counter("panlist_store_errors_total", "Database statements that failed")
}
