// OAuth: a small typed JSON tree, so token bodies are read without `Any` casts or Foundation bridging surprises.
import Foundation

/// Any JSON value; numbers keep the distinction between integers and fractions, booleans are never numbers.
enum JSONValue: Decodable, Sendable, Equatable {
    case null
    case bool(Bool)
    case integer(Int)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    /// Parses a whole body that must be a JSON object.
    static func object(from body: [UInt8]) throws(OAuthError) -> [String: JSONValue] {
        guard !body.isEmpty else { throw .invalidResponse(reason: "empty body") }
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: Data(body))
        } catch {
            throw .invalidResponse(reason: "body is not JSON")
        }
        guard case .object(let object) = value else { throw .invalidResponse(reason: "JSON body is not an object") }
        return object
    }

    /// A string value, else nil.
    var string: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    /// An integer from a JSON integer, an integral number or a decimal string ("3599"); nil for anything else.
    var integer: Int? {
        switch self {
        case .integer(let value):
            return value
        case .number(let value):
            guard value.rounded() == value, abs(value) < 1e12 else { return nil }
            return Int(value)
        case .string(let text):
            let trimmed = text.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty, trimmed.utf8.count <= 12,
                trimmed.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 })
            else { return nil }
            return Int(trimmed)
        default:
            return nil
        }
    }
}
