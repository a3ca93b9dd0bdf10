import Foundation
import NIOCore
#if canImport(FoundationXML)
import FoundationXML
#endif
import PanListCore
import PanListStore

/// A namespace-qualified XML name (`DAV:` + `getetag`).
struct QName: Hashable, Sendable {
    var ns: String
    var name: String
    static func dav(_ name: String) -> QName { QName(ns: "DAV:", name: name) }
}

/// A parsed XML element: its qualified name, attributes without namespace declarations, and its
/// children in document order (elements and text).
final class XMLElementNode: @unchecked Sendable {
    enum Child { case element(XMLElementNode), text(String) }
    let qname: QName
    var attributes: [String: String]
    var children: [Child] = []
    init(_ qname: QName, attributes: [String: String]) { self.qname = qname; self.attributes = attributes }

    var elements: [XMLElementNode] {
        children.compactMap { if case .element(let e) = $0 { return e } else { return nil } }
    }
    func first(_ name: QName) -> XMLElementNode? { elements.first { $0.qname == name } }
    var text: String {
        children.map { switch $0 { case .text(let t): t; case .element(let e): e.text } }.joined()
    }

    /// The children serialised as a self-contained XML fragment (every element declares the
    /// namespace it is in), for storing a dead property's value.
    var innerXML: String {
        var out = ""
        for c in children {
            switch c {
            case .text(let t): out += DAVXML.escape(t)
            case .element(let e): out += e.outerXML
            }
        }
        return out
    }

    var outerXML: String {
        let (open, close) = DAVXML.tag(qname)
        var attrs = ""
        for (k, v) in attributes.sorted(by: { $0.key < $1.key }) where !k.contains(":") {
            attrs += " \(k)=\"\(DAVXML.escape(v))\""
        }
        let inner = innerXML
        if inner.isEmpty { return "<\(open)\(attrs)/>" }
        return "<\(open)\(attrs)>\(inner)</\(close)>"
    }
}

enum DAVXML {
    /// Bodies are small: over this they are refused.
    static let maxBody = 1 << 20

    /// `s` with `&`, `<`, `>` and `"` escaped (by `XMLOut.text`, the one escaping rule of the WebDAV answers).
    static func escape(_ s: String) -> String {
        // Most names and values need nothing: return them as they are.
        if !s.utf8.contains(where: { $0 == UInt8(ascii: "&") || $0 == UInt8(ascii: "<") || $0 == UInt8(ascii: ">") || $0 == UInt8(ascii: "\"") }) {
            return s
        }
        var out = XMLOut(capacity: s.utf8.count + 32)
        out.text(s)
        return String(decoding: out.out.bytes, as: UTF8.self)
    }

    /// Opening and closing tag text for a qualified name: `D:x` for DAV:, a local prefix with its
    /// declaration for other namespaces, and a bare name for no namespace (no default namespace is
    /// ever declared in PanList's answers, so a bare name is in no namespace).
    static func tag(_ q: QName) -> (open: String, close: String) {
        switch q.ns {
        case "DAV:": return ("D:\(q.name)", "D:\(q.name)")
        case "": return (q.name, q.name)
        default: return ("x:\(q.name) xmlns:x=\"\(escape(q.ns))\"", "x:\(q.name)")
        }
    }

    static func element(_ q: QName, _ inner: String) -> String {
        let (open, close) = tag(q)
        return inner.isEmpty ? "<\(open)/>" : "<\(open)>\(inner)</\(close)>"
    }

    /// Parses a request body into a tree; nil when it is not well-formed XML (or uses a DOCTYPE).
    static func parse(_ data: Data) -> XMLElementNode? {
        if data.isEmpty { return nil }
        if let head = String(data: data.prefix(4096), encoding: .utf8), head.range(of: "<!DOCTYPE", options: .caseInsensitive) != nil {
            return nil
        }
        let parser = XMLParser(data: data)
        parser.shouldProcessNamespaces = true
        parser.shouldResolveExternalEntities = false
        let delegate = TreeBuilder()
        parser.delegate = delegate
        // On Linux parse() may return true for a truncated document: also require no error and a closed root.
        guard parser.parse(), parser.parserError == nil, delegate.failed == false, delegate.stack.isEmpty, let root = delegate.root else {
            return nil
        }
        return root
    }

    final class TreeBuilder: NSObject, XMLParserDelegate {
        var stack: [XMLElementNode] = []
        var root: XMLElementNode?
        var failed = false

        func parser(_ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
                    qualifiedName qName: String?, attributes attributeDict: [String: String] = [:]) {
            let node = XMLElementNode(QName(ns: namespaceURI ?? "", name: elementName),
                                      attributes: attributeDict.filter { !$0.key.hasPrefix("xmlns") })
            if let parent = stack.last { parent.children.append(.element(node)) } else if root == nil { root = node } else { failed = true }
            stack.append(node)
        }

        func parser(_ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?, qualifiedName qName: String?) {
            if stack.popLast() == nil { failed = true }
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) {
            guard let top = stack.last else { return }
            if case .text(let t)? = top.children.last {
                top.children[top.children.count - 1] = .text(t + string)
            } else {
                top.children.append(.text(string))
            }
        }

        func parser(_ parser: XMLParser, foundCDATA CDATABlock: Data) {
            self.parser(parser, foundCharacters: String(decoding: CDATABlock, as: UTF8.self))
        }

        func parser(_ parser: XMLParser, parseErrorOccurred parseError: any Error) { failed = true }
    }
}

/// Builds an XML answer in a ByteBuffer: static parts written as they are, text escaped byte by byte
/// (a listing of 10,000 entries is ~5 MB; building it as a String spent most of PROPFIND's time).
struct XMLOut {
    private(set) var out: ByteOut

    init(capacity: Int) { out = ByteOut(capacity: capacity) }

    var count: Int { out.count }
    mutating func take() -> ByteBuffer { out.take() }

    mutating func raw(_ s: StaticString) { out.raw(s) }
    mutating func raw(_ s: String) { out.raw(s) }

    /// Escapes `&`, `<`, `>` and `"`.
    mutating func text(_ s: String) {
        out.escaped(s) { b in
            switch b {
            case UInt8(ascii: "&"): return "&amp;"
            case UInt8(ascii: "<"): return "&lt;"
            case UInt8(ascii: ">"): return "&gt;"
            case UInt8(ascii: "\""): return "&quot;"
            default: return nil
            }
        }
    }

    /// Lower-case hex digits of `value` (as `String(value, radix: 16)`), without building a String.
    mutating func hex(_ value: UInt64) { out.hex(value) }

    /// An HTTP date (`getlastmodified`), written straight into the answer.
    mutating func httpDate(_ d: Date) { out.fixed(HTTPDate.length) { HTTPDate.format(d, into: $0) } }

    /// An RFC 3339 time (`creationdate`), written straight into the answer.
    mutating func rfc3339(_ d: Date) { out.fixed(TimeFormat.rfc3339Length) { TimeFormat.rfc3339(d, into: $0) } }

    /// `<D:name>inner</D:name>` (inner is already XML).
    mutating func element(_ q: QName, _ inner: String) {
        switch q.ns {
        case "DAV:":
            raw("<D:"); raw(q.name)
            if inner.isEmpty { raw("/>"); return }
            raw(">"); raw(inner)
            raw("</D:"); raw(q.name); raw(">")
        default:
            raw(DAVXML.element(q, inner))
        }
    }
}

/// What a PROPFIND asks for.
enum PropfindRequest {
    case allprop
    case propname
    case prop([QName])

    /// An empty body means allprop (RFC 4918 §9.1); anything that is not a `propfind` is nil (400).
    static func parse(_ data: Data) -> PropfindRequest? {
        if data.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) { return .allprop }
        guard let root = DAVXML.parse(data), root.qname == .dav("propfind") else { return nil }
        if root.first(.dav("propname")) != nil { return .propname }
        if let prop = root.first(.dav("prop")) { return .prop(prop.elements.map(\.qname)) }
        if root.first(.dav("allprop")) != nil { return .allprop }
        return nil
    }
}

/// PROPPATCH instructions, in document order.
enum PropPatch {
    case set(DeadProperty)
    case remove(QName)

    static func parse(_ data: Data) -> [PropPatch]? {
        guard let root = DAVXML.parse(data), root.qname == .dav("propertyupdate") else { return nil }
        var out: [PropPatch] = []
        for op in root.elements {
            guard let prop = op.first(.dav("prop")) else { continue }
            for p in prop.elements {
                switch op.qname {
                case .dav("set"): out.append(.set(DeadProperty(ns: p.qname.ns, name: p.qname.name, value: p.innerXML)))
                case .dav("remove"): out.append(.remove(p.qname))
                default: return nil
                }
            }
        }
        return out
    }
}

/// A LOCK request body: the scope and the owner (kept as XML, given back in lockdiscovery).
struct LockInfo {
    var exclusive: Bool
    var owner: String

    static func parse(_ data: Data) -> LockInfo? {
        guard let root = DAVXML.parse(data), root.qname == .dav("lockinfo") else { return nil }
        guard let scope = root.first(.dav("lockscope")) else { return nil }
        let exclusive = scope.first(.dav("exclusive")) != nil
        guard exclusive || scope.first(.dav("shared")) != nil else { return nil }
        if let type = root.first(.dav("locktype")), type.first(.dav("write")) == nil { return nil }
        return LockInfo(exclusive: exclusive, owner: root.first(.dav("owner"))?.innerXML ?? "")
    }
}
