// ByteLevelBPE owns the byte-level BPE tokenizer of GPT-2, SmolLM2 and their kin, as
// `tokenizers` runs it (models/bpe, pre_tokenizers/byte_level, pre_tokenizers/digits): added
// tokens are split out of the raw text first; each remaining piece is pre-tokenized (SmolLM2:
// every digit alone, then GPT-2's regex), its UTF-8 bytes are mapped one to one onto printable
// characters, and BPE merges them by rank. Tokens are kept as the byte strings they stand for,
// so vocabulary lookups compare bytes, never canonically equivalent Swift strings.
import Foundation

public struct ByteLevelBPETokenizer: Sendable {
  /// How the text is split before BPE.
  enum PreTokenizer: Sendable, Equatable {
    /// GPT-2's regex (`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`).
    case gpt2
    /// Every numeric scalar alone (`Digits(individual_digits)`), then GPT-2's regex.
    case digitsThenGPT2
  }

  let preTokenizer: PreTokenizer
  let addPrefixSpace: Bool
  /// Take a whole pre-token that is in the vocabulary without merging (LLaMA-3's
  /// `ignore_merges`).
  let ignoreMerges: Bool
  /// Token bytes → id, and id → token bytes.
  let ids: [[UInt8]: Int32]
  let tokenBytes: [Int32: [UInt8]]
  /// (left id, right id) → (rank, merged id).
  let merges: [UInt64: (rank: Int32, id: Int32)]
  let addedTokens: AddedTokenMatcher
  let addedTokenContent: [Int32: String]
  let unknownID: Int32?
  /// The id of each byte's one-character token.
  let byteIDs: [Int32?]
  public let vocabularySize: Int
  public let sourcePath: String

  /// `vocabulary` maps token strings in GPT-2's byte-to-character alphabet to ids; `merges`
  /// are pairs of such strings, highest priority first.
  init(
    vocabulary: [(token: String, id: Int32)], merges: [(String, String)],
    addedTokens: [AddedToken], preTokenizer: PreTokenizer, addPrefixSpace: Bool,
    ignoreMerges: Bool, unknownToken: String?, path: String
  ) throws(ModelError) {
    var ids: [[UInt8]: Int32] = [:]
    var tokenBytes: [Int32: [UInt8]] = [:]
    for (token, id) in vocabulary {
      guard let bytes = ByteAlphabet.bytes(of: token) else {
        throw .malformed(path: path, reason: "vocabulary entry '\(token)' is not byte-level text")
      }
      ids[bytes] = id
      tokenBytes[id] = bytes
    }
    var mergeTable: [UInt64: (rank: Int32, id: Int32)] = [:]
    for (rank, (left, right)) in merges.enumerated() {
      guard let a = ByteAlphabet.bytes(of: left), let b = ByteAlphabet.bytes(of: right),
        let leftID = ids[a], let rightID = ids[b], let merged = ids[a + b]
      else {
        throw .malformed(
          path: path,
          reason: "merge \(rank) '\(left) \(right)' names a token outside the vocabulary")
      }
      let key = UInt64(UInt32(bitPattern: leftID)) << 32 | UInt64(UInt32(bitPattern: rightID))
      if mergeTable[key] == nil { mergeTable[key] = (Int32(rank), merged) }
    }
    var content: [Int32: String] = [:]
    for token in addedTokens {
      content[token.id] = String(String.UnicodeScalarView(token.content))
    }
    self.ids = ids
    self.tokenBytes = tokenBytes
    self.merges = mergeTable
    self.addedTokens = AddedTokenMatcher(tokens: addedTokens)
    addedTokenContent = content
    self.preTokenizer = preTokenizer
    self.addPrefixSpace = addPrefixSpace
    self.ignoreMerges = ignoreMerges
    unknownID = unknownToken.flatMap { ByteAlphabet.bytes(of: $0) }.flatMap { ids[$0] }
    byteIDs = (0..<256).map { ids[[UInt8($0)]] }
    vocabularySize = max(
      tokenBytes.keys.max().map { Int($0) + 1 } ?? 0, content.keys.max().map { Int($0) + 1 } ?? 0)
    sourcePath = path
  }

  // MARK: Encoding

  /// The ids of `text`, without special tokens added (those written in the text are found).
  public func encode(_ text: String) -> [Int32] {
    let scalars = Array(text.unicodeScalars)
    var out: [Int32] = []
    var first = true
    for piece in addedTokens.split(scalars, 0..<scalars.count) {
      switch piece {
      case .token(let id):
        out.append(id)
      case .text(let range):
        var segment = Array(scalars[range])
        if addPrefixSpace && first && segment.first != " " { segment.insert(" ", at: 0) }
        for word in preTokenize(segment) { encodeWord(word, into: &out) }
      }
      first = false
    }
    return out
  }

  /// The pieces BPE runs on: GPT-2's regex over each piece the digit split leaves.
  func preTokenize(_ scalars: [Unicode.Scalar]) -> [ArraySlice<Unicode.Scalar>] {
    switch preTokenizer {
    case .gpt2:
      return GPT2Split.split(scalars[...])
    case .digitsThenGPT2:
      var pieces: [ArraySlice<Unicode.Scalar>] = []
      var start = 0
      for (i, scalar) in scalars.enumerated() where GPT2Split.kind(scalar) == .number {
        if start < i { pieces += GPT2Split.split(scalars[start..<i]) }
        pieces.append(scalars[i..<i + 1])
        start = i + 1
      }
      if start < scalars.count { pieces += GPT2Split.split(scalars[start...]) }
      return pieces
    }
  }

  /// BPE over one pre-token's bytes: repeatedly merge the adjacent pair of lowest rank
  /// (leftmost first), as `tokenizers`' `Word::merge_all` does.
  func encodeWord(_ word: ArraySlice<Unicode.Scalar>, into out: inout [Int32]) {
    var bytes: [UInt8] = []
    for scalar in word { bytes += Array(String(scalar).utf8) }
    if ignoreMerges, let whole = ids[bytes] {
      out.append(whole)
      return
    }
    var symbols: [Int32] = []
    symbols.reserveCapacity(bytes.count)
    for byte in bytes {
      if let id = byteIDs[Int(byte)] {
        symbols.append(id)
      } else if let unknownID {
        symbols.append(unknownID)
      }
    }
    while symbols.count > 1 {
      var best: (rank: Int32, at: Int, id: Int32)?
      for i in 0..<(symbols.count - 1) {
        let key =
          UInt64(UInt32(bitPattern: symbols[i])) << 32 | UInt64(UInt32(bitPattern: symbols[i + 1]))
        if let merge = merges[key], best == nil || merge.rank < best!.rank {
          best = (merge.rank, i, merge.id)
        }
      }
      guard let best else { break }
      symbols[best.at] = best.id
      symbols.remove(at: best.at + 1)
    }
    out += symbols
  }

  // MARK: Tokens and decoding

  /// Each id's token as `tokenizers` prints it (byte-level text, e.g. "Ġhello"), or the added
  /// token's content; "<unk:ID>" for an id the tokenizer does not know.
  public func tokens(_ ids: [Int32]) -> [String] {
    ids.map { id in
      if let content = addedTokenContent[id] { return content }
      guard let bytes = tokenBytes[id] else { return "<unk:\(id)>" }
      return ByteAlphabet.text(of: bytes)
    }
  }

  /// The text of `ids`: token bytes joined and read as UTF-8 (invalid sequences become
  /// U+FFFD, as `tokenizers`' ByteLevel decoder does); special tokens are kept unless
  /// `skipSpecial`.
  public func decode(_ ids: [Int32], skipSpecial: Bool = false) -> String {
    var bytes: [UInt8] = []
    for id in ids {
      if let content = addedTokenContent[id] {
        if !skipSpecial { bytes += Array(content.utf8) }
      } else if let token = tokenBytes[id] {
        bytes += token
      }
    }
    return String(decoding: bytes, as: UTF8.self)
  }
}

/// GPT-2's byte-to-character alphabet: printable bytes stand for themselves, the other 68 are
/// moved to U+0100 onwards, so every byte string is printable text.
enum ByteAlphabet {
  static let characters: [Unicode.Scalar] = {
    let printable = Set(Array(33...126) + Array(161...172) + Array(174...255))
    var table = [UInt32](repeating: 0, count: 256)
    var next: UInt32 = 256
    for b in 0..<256 {
      if printable.contains(b) {
        table[b] = UInt32(b)
      } else {
        table[b] = next
        next += 1
      }
    }
    return table.map { Unicode.Scalar($0)! }
  }()

  static let byteOfCharacter: [UInt32: UInt8] = {
    var out: [UInt32: UInt8] = [:]
    for (b, c) in characters.enumerated() { out[c.value] = UInt8(b) }
    return out
  }()

  /// The bytes a byte-level token stands for; nil if it holds a character outside the alphabet.
  static func bytes(of token: String) -> [UInt8]? {
    var out: [UInt8] = []
    out.reserveCapacity(token.unicodeScalars.count)
    for scalar in token.unicodeScalars {
      guard let byte = byteOfCharacter[scalar.value] else { return nil }
      out.append(byte)
    }
    return out
  }

  static func text(of bytes: [UInt8]) -> String {
    var view = String.UnicodeScalarView()
    for b in bytes { view.append(characters[Int(b)]) }
    return String(view)
  }
}

/// GPT-2's pre-tokenizer regex, written out over scalars with Oniguruma's semantics (first
/// alternative that matches, `\s` the White_Space property, `\p{L}` and `\p{N}` the letter and
/// number categories). Its alternatives cover every scalar, so the matches tile the text.
enum GPT2Split {
  enum Class { case space, letter, number, other }

  static func kind(_ scalar: Unicode.Scalar) -> Class {
    let properties = scalar.properties
    if properties.isWhitespace { return .space }
    switch properties.generalCategory {
    case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
      return .letter
    case .decimalNumber, .letterNumber, .otherNumber:
      return .number
    default:
      return .other
    }
  }

  static func split(_ text: ArraySlice<Unicode.Scalar>) -> [ArraySlice<Unicode.Scalar>] {
    var pieces: [ArraySlice<Unicode.Scalar>] = []
    var i = text.startIndex
    let end = text.endIndex
    func run(from start: Int, while wanted: Class) -> Int {
      var j = start
      while j < end, kind(text[j]) == wanted { j += 1 }
      return j
    }
    while i < end {
      let c = text[i]
      // 's 't 're 've 'm 'll 'd
      if c == "'", i + 1 < end {
        let next = text[i + 1]
        if next == "s" || next == "t" || next == "m" || next == "d" {
          pieces.append(text[i..<i + 2])
          i += 2
          continue
        }
        if i + 2 < end,
          (next == "r" && text[i + 2] == "e") || (next == "v" && text[i + 2] == "e")
            || (next == "l" && text[i + 2] == "l")
        {
          pieces.append(text[i..<i + 3])
          i += 3
          continue
        }
      }
      // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`
      let body = c == " " && i + 1 < end ? i + 1 : i
      let bodyKind = kind(text[body])
      if bodyKind != .space {
        let stop = run(from: body, while: bodyKind)
        pieces.append(text[i..<stop])
        i = stop
        continue
      }
      // `\s+(?!\S)`, else `\s+`
      let stop = run(from: i, while: .space)
      if stop < end && stop - i > 1 {
        pieces.append(text[i..<stop - 1])
        i = stop - 1
      } else {
        pieces.append(text[i..<stop])
        i = stop
      }
    }
    return pieces
  }
}
