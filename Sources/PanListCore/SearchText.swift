import Foundation

/// How names are matched by search: case-insensitive, the same for NFC and NFD spellings, by substring of
/// Unicode scalars (so that 测试 is found in 下载测试文件.txt). A name's `key` is what the index compares; its
/// `grams` (every distinct character and every distinct pair of neighbouring characters) are what the index
/// looks up, so that a word of any length — one or two CJK characters included, which trigram indexes cannot
/// find — narrows the search to the names that hold all its grams before the key is compared.
public enum SearchText {
    /// Lower case, then NFC (lower-casing can decompose a few characters). ASCII names take a short cut.
    public static func key(_ s: String) -> String {
        if s.utf8.allSatisfy({ $0 < 0x80 }) {
            return String(decoding: s.utf8.map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 0x20 : $0 }, as: UTF8.self)
        }
        return s.precomposedStringWithCanonicalMapping.lowercased().precomposedStringWithCanonicalMapping
    }

    /// The words of a query: separated by white space, each as a key, duplicates and empties dropped.
    public static func words(_ keywords: String) -> [String] {
        var seen = Set<String>()
        return keywords.split(whereSeparator: { $0.isWhitespace }).map { key(String($0)) }.filter { !$0.isEmpty && seen.insert($0).inserted }
    }

    /// The FTS token of one character (`u` and its scalar value in hex) and of a pair (`<hex>x<hex>`): plain
    /// ASCII letters and digits, so SQLite's `ascii` tokenizer keeps each whole.
    static func unigram(_ a: Unicode.Scalar) -> String { "u" + String(a.value, radix: 16) }
    static func bigram(_ a: Unicode.Scalar, _ b: Unicode.Scalar) -> String { String(a.value, radix: 16) + "x" + String(b.value, radix: 16) }

    /// The index tokens of a key, space-separated (SQLite's FTS5 table).
    public static func tokens(ofKey key: String) -> String {
        let s = Array(key.unicodeScalars)
        var seen = Set<String>()
        var out: [String] = []
        out.reserveCapacity(s.count * 2)
        for c in s { let t = unigram(c); if seen.insert(t).inserted { out.append(t) } }
        if s.count > 1 { for i in 0..<(s.count - 1) { let t = bigram(s[i], s[i + 1]); if seen.insert(t).inserted { out.append(t) } } }
        return out.joined(separator: " ")
    }

    /// The tokens a name must have to hold `word` (a key): its one character, or its pairs.
    public static func tokens(ofWord word: String) -> [String] {
        let s = Array(word.unicodeScalars)
        if s.count == 1 { return [unigram(s[0])] }
        var seen = Set<String>()
        return (0..<max(0, s.count - 1)).map { bigram(s[$0], s[$0 + 1]) }.filter { seen.insert($0).inserted }
    }

    /// Whether the tokens of `word` alone decide a match (one or two characters): longer words hold all their
    /// pairs in names that do not hold the word itself, so the key is compared too.
    public static func tokensDecide(_ word: String) -> Bool { word.unicodeScalars.count <= 2 }
}
