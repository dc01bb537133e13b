// Config: finds the line of a key or table in the configuration text, so semantic errors can name it.

/// Best-effort location of keys in TOML text.
///
/// TOMLKit reports lines only for syntax errors; for a value that parses but is not allowed we scan the text:
/// every `key = …` line is given its full dotted path (the current `[table]` header plus the key's own dotted
/// parts), and the first line whose path matches wins. Multi-line strings and arrays can fool the scan; then the
/// error simply has no line.
struct LineFinder {
    private var entries: [(path: [String], line: Int, isHeader: Bool)] = []

    init(text: String) {
        var current: [String] = []
        var lineNumber = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = rawLine.trimmingSpaces()
            guard !line.isEmpty, !line.hasPrefix("#") else { continue }
            if line.hasPrefix("[") {
                let isArray = line.hasPrefix("[[")
                let inner = line.dropFirst(isArray ? 2 : 1)
                guard let close = inner.firstIndex(of: "]") else { continue }
                current = Self.splitKey(inner[..<close])
                entries.append((current, lineNumber, true))
                continue
            }
            guard let equals = line.firstIndex(of: "=") else { continue }
            let key = Self.splitKey(line[..<equals])
            guard !key.isEmpty else { continue }
            entries.append((current + key, lineNumber, false))
        }
    }

    /// The line of `key` (a dotted path such as `["server", "m365", "smtp"]`), or of the nearest enclosing table.
    func line(of path: [String]) -> Int? {
        if let exact = entries.first(where: { $0.path == path }) { return exact.line }
        // The key itself may be absent (a missing required key): point at its table.
        var prefix = path
        while !prefix.isEmpty {
            prefix.removeLast()
            if let header = entries.first(where: { $0.isHeader && $0.path == prefix }) { return header.line }
            if let inside = entries.first(where: { $0.path.starts(with: prefix) && !prefix.isEmpty }) {
                return inside.line
            }
        }
        return nil
    }

    /// `a . "b.c" . d` → ["a", "b.c", "d"]; quotes are removed, whitespace around parts trimmed.
    static func splitKey(_ text: Substring) -> [String] {
        var parts: [String] = []
        var current = ""
        var quote: Character? = nil
        for character in text {
            if let open = quote {
                if character == open { quote = nil } else { current.append(character) }
            } else if character == "\"" || character == "'" {
                quote = character
            } else if character == "." {
                parts.append(current.trimmingSpaces())
                current = ""
            } else {
                current.append(character)
            }
        }
        parts.append(current.trimmingSpaces())
        return parts.contains(where: \.isEmpty) ? [] : parts
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces, tabs and carriage returns.
    func trimmingSpaces() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else {
            return ""
        }
        return String(self[first...last])
    }
}
