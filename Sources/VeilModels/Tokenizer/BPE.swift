// BPE owns the BPE tokenizers of decoder models, as `tokenizers` runs them (models/bpe): added
// tokens are split out of the raw text first, then each remaining piece becomes symbols that
// BPE merges by rank, in one of two schemes.
// - Byte-level (GPT-2, SmolLM2, LLaMA-3; pre_tokenizers/byte_level): a pre-tokenizer regex splits
//   the piece, each split's UTF-8 bytes are the symbols (one token per byte).
// - SentencePiece-style (LLaMA-1/2, Mistral): spaces become "▁", a "▁" is prepended, each scalar
//   is a symbol, and a scalar outside the vocabulary falls back to its UTF-8 bytes as <0xXX>
//   pieces (`byte_fallback`).
// Tokens are kept as the byte strings they stand for (byte-level) or spell (SentencePiece), so
// vocabulary lookups compare bytes, never canonically equivalent Swift strings.
import Foundation

public struct BPETokenizer: Sendable {
  /// How text becomes the symbols BPE merges, and tokens text again.
  enum Scheme: Sendable, Equatable {
    case byteLevel(PreTokenizer, addPrefixSpace: Bool)
    case sentencePiece(Prepend)
  }

  /// How the byte-level scheme splits a piece before BPE.
  enum PreTokenizer: Sendable, Equatable {
    /// GPT-2's regex (`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`).
    case gpt2
    /// Every numeric scalar alone (`Digits(individual_digits)`), then GPT-2's regex (SmolLM2).
    case digitsThenGPT2
    /// LLaMA-3's Split regex (numbers in threes, a non-letter glued before a word, newlines
    /// kept with the whitespace before them).
    case llama3
  }

  /// Where the SentencePiece scheme puts a "▁" in front of a piece of text (after spaces became
  /// "▁"). The layouts differ on a text that starts with a space or follows an added token.
  enum Prepend: Sendable, Equatable {
    /// Before every piece: normalizer Sequence[Prepend("▁"), Replace(" ", "▁")] (Meta's
    /// LLaMA-2 tokenizer.json).
    case always
    /// Before every piece not already starting with "▁": Metaspace, prepend_scheme "always".
    case unlessSpaced
    /// Only before the piece at the start of the text, unless it starts with "▁": Metaspace,
    /// prepend_scheme "first" (transformers' legacy=False).
    case firstUnlessSpaced
    case never
  }

  let scheme: Scheme
  /// Take a whole pre-token that is in the vocabulary without merging (LLaMA-3's
  /// `ignore_merges`).
  let ignoreMerges: Bool
  /// SentencePiece: a scalar outside the vocabulary becomes its <0xXX> byte pieces.
  let byteFallback: Bool
  /// Consecutive unknown symbols become one unknown token.
  let fuseUnknown: Bool
  /// Decoding drops one leading space (the "▁" the encoder prepended): SentencePiece decoders
  /// Strip(" ", 1, 0) or Metaspace.
  let decodeStripsLeadingSpace: Bool
  /// Token key → id and id → token key. The key is the bytes a byte-level token stands for, or
  /// the UTF-8 of a SentencePiece piece.
  let ids: [[UInt8]: Int32]
  let tokenBytes: [Int32: [UInt8]]
  /// (left id, right id) → (rank, merged id).
  let merges: [UInt64: (rank: Int32, id: Int32)]
  let addedTokens: AddedTokenMatcher
  let addedTokenContent: [Int32: String]
  let unknownID: Int32?
  /// The id standing for each lone byte: its one-character token (byte-level) or its <0xXX>
  /// piece (SentencePiece).
  let byteIDs: [Int32?]
  /// SentencePiece: the id of each single-scalar piece, and the byte each <0xXX> piece stands for.
  let scalarIDs: [UInt32: Int32]
  let fallbackByte: [Int32: UInt8]
  public let vocabularySize: Int
  public let sourcePath: String

  /// `vocabulary` maps token strings (byte-level: in GPT-2's byte-to-character alphabet) to
  /// ids; `merges` are pairs of such strings, highest priority first.
  init(
    vocabulary: [(token: String, id: Int32)], merges: [(String, String)],
    addedTokens: [AddedToken], scheme: Scheme, ignoreMerges: Bool, byteFallback: Bool = false,
    fuseUnknown: Bool = false, decodeStripsLeadingSpace: Bool = false, unknownToken: String?,
    path: String
  ) throws(ModelError) {
    let key: (String) -> [UInt8]?
    if case .byteLevel = scheme {
      key = ByteAlphabet.bytes(of:)
    } else {
      key = { Array($0.utf8) }
    }
    var ids: [[UInt8]: Int32] = [:]
    var tokenBytes: [Int32: [UInt8]] = [:]
    for (token, id) in vocabulary {
      guard let bytes = key(token) else {
        throw .malformed(path: path, reason: "vocabulary entry '\(token)' is not byte-level text")
      }
      ids[bytes] = id
      tokenBytes[id] = bytes
    }
    var mergeTable: [UInt64: (rank: Int32, id: Int32)] = [:]
    for (rank, (left, right)) in merges.enumerated() {
      guard let a = key(left), let b = key(right),
        let leftID = ids[a], let rightID = ids[b], let merged = ids[a + b]
      else {
        throw .malformed(
          path: path,
          reason: "merge \(rank) '\(left) \(right)' names a token outside the vocabulary")
      }
      let pair = Self.pairKey(leftID, rightID)
      if mergeTable[pair] == nil { mergeTable[pair] = (Int32(rank), merged) }
    }
    var content: [Int32: String] = [:]
    for token in addedTokens {
      content[token.id] = String(String.UnicodeScalarView(token.content))
    }
    var scalarIDs: [UInt32: Int32] = [:]
    var fallbackByte: [Int32: UInt8] = [:]
    if case .sentencePiece = scheme {
      for (bytes, id) in ids {
        let scalars = String(decoding: bytes, as: UTF8.self).unicodeScalars
        if scalars.count == 1 { scalarIDs[scalars.first!.value] = id }
      }
      for b in 0..<256 {
        if let id = ids[Array(String(format: "<0x%02X>", b).utf8)] { fallbackByte[id] = UInt8(b) }
      }
      if byteFallback && fallbackByte.count != 256 {
        throw .malformed(
          path: path,
          reason:
            "byte_fallback is on but only \(fallbackByte.count) of the 256 <0xXX> pieces exist")
      }
    }
    self.ids = ids
    self.tokenBytes = tokenBytes
    self.merges = mergeTable
    self.addedTokens = AddedTokenMatcher(tokens: addedTokens)
    addedTokenContent = content
    self.scheme = scheme
    self.ignoreMerges = ignoreMerges
    self.byteFallback = byteFallback
    self.fuseUnknown = fuseUnknown
    self.decodeStripsLeadingSpace = decodeStripsLeadingSpace
    unknownID = unknownToken.flatMap(key).flatMap { ids[$0] }
    if case .byteLevel = scheme {
      byteIDs = (0..<256).map { ids[[UInt8($0)]] }
    } else {
      var byFallback = [Int32?](repeating: nil, count: 256)
      for (id, byte) in fallbackByte { byFallback[Int(byte)] = id }
      byteIDs = byFallback
    }
    self.scalarIDs = scalarIDs
    self.fallbackByte = fallbackByte
    vocabularySize = max(
      tokenBytes.keys.max().map { Int($0) + 1 } ?? 0, content.keys.max().map { Int($0) + 1 } ?? 0)
    sourcePath = path
  }

  static func pairKey(_ left: Int32, _ right: Int32) -> UInt64 {
    UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
  }

  // MARK: Encoding

  /// The ids of `text`, without special tokens added (those written in the text are found).
  public func encode(_ text: String) -> [Int32] {
    let scalars = Array(text.unicodeScalars)
    var out: [Int32] = []
    for piece in addedTokens.split(scalars, 0..<scalars.count) {
      switch piece {
      case .token(let id):
        out.append(id)
      case .text(let range):
        switch scheme {
        case .byteLevel(let preTokenizer, let addPrefixSpace):
          var segment = Array(scalars[range])
          if addPrefixSpace && range.lowerBound == 0 && segment.first != " " {
            segment.insert(" ", at: 0)
          }
          for word in Self.preTokenize(segment, preTokenizer) {
            var bytes: [UInt8] = []
            for scalar in word { bytes += Array(String(scalar).utf8) }
            encodeByteLevelWord(bytes, into: &out)
          }
        case .sentencePiece(let prepend):
          encodeSentencePiece(scalars[range], atStart: range.lowerBound == 0, prepend, into: &out)
        }
      }
    }
    return out
  }

  /// The byte-level pre-tokens of a piece of text.
  static func preTokenize(_ scalars: [Unicode.Scalar], _ preTokenizer: PreTokenizer)
    -> [ArraySlice<Unicode.Scalar>]
  {
    switch preTokenizer {
    case .gpt2:
      return GPT2Split.split(scalars[...])
    case .llama3:
      return Llama3Split.split(scalars[...])
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

  /// One byte-level pre-token: its bytes' tokens, merged.
  func encodeByteLevelWord(_ bytes: [UInt8], into out: inout [Int32]) {
    if ignoreMerges, let whole = ids[bytes] {
      out.append(whole)
      return
    }
    var symbols: [Int32] = []
    symbols.reserveCapacity(bytes.count)
    for byte in bytes {
      appendSymbol(byteIDs[Int(byte)], to: &symbols)
    }
    merge(&symbols)
    out += symbols
  }

  /// One piece of text under the SentencePiece scheme: spaces as "▁", the "▁" in front, then its
  /// scalars' pieces (or byte pieces), merged as one word (these tokenizers do not pre-split).
  func encodeSentencePiece(
    _ text: ArraySlice<Unicode.Scalar>, atStart: Bool, _ prepend: Prepend,
    into out: inout [Int32]
  ) {
    let space: Unicode.Scalar = "\u{2581}"
    var word = text.map { $0 == " " ? space : $0 }
    let spaced = word.first == space
    switch prepend {
    case .always: word.insert(space, at: 0)
    case .unlessSpaced where !spaced: word.insert(space, at: 0)
    case .firstUnlessSpaced where atStart && !spaced: word.insert(space, at: 0)
    default: break
    }
    if ignoreMerges, let whole = ids[Array(String(String.UnicodeScalarView(word)).utf8)] {
      out.append(whole)
      return
    }
    var symbols: [Int32] = []
    symbols.reserveCapacity(word.count)
    for scalar in word {
      if let id = scalarIDs[scalar.value] {
        symbols.append(id)
        continue
      }
      let bytes = Array(String(scalar).utf8)
      if byteFallback, bytes.allSatisfy({ byteIDs[Int($0)] != nil }) {
        for byte in bytes { symbols.append(byteIDs[Int(byte)]!) }
      } else {
        appendSymbol(nil, to: &symbols)
      }
    }
    merge(&symbols)
    out += symbols
  }

  /// Appends a symbol's id, or for one outside the vocabulary the unknown token (once for a
  /// run when unknowns fuse); dropped when there is no unknown token, as `tokenizers` does.
  private func appendSymbol(_ id: Int32?, to symbols: inout [Int32]) {
    if let id {
      symbols.append(id)
    } else if let unknownID, !(fuseUnknown && symbols.last == unknownID) {
      symbols.append(unknownID)
    }
  }

  /// BPE: repeatedly merge the adjacent pair of lowest rank (leftmost first), as `tokenizers`'
  /// `Word::merge_all` does. Each pair's rank is looked up once and updated beside a merge.
  func merge(_ symbols: inout [Int32]) {
    guard symbols.count > 1 else { return }
    let none = Int32.max
    func rank(_ i: Int) -> Int32 { merges[Self.pairKey(symbols[i], symbols[i + 1])]?.rank ?? none }
    var ranks = (0..<(symbols.count - 1)).map(rank)
    while true {
      var best = none
      var at = -1
      for (i, r) in ranks.enumerated() where r < best {
        best = r
        at = i
      }
      guard at >= 0, let merged = merges[Self.pairKey(symbols[at], symbols[at + 1])] else { return }
      symbols[at] = merged.id
      symbols.remove(at: at + 1)
      ranks.remove(at: at)
      if at < ranks.count { ranks[at] = rank(at) }
      if at > 0 { ranks[at - 1] = rank(at - 1) }
    }
  }

  // MARK: Tokens and decoding

  /// Each id's token as `tokenizers` prints it (byte-level text such as "Ġhello", or the piece
  /// such as "▁hello" / "<0x0A>"), or the added token's content; "<unk:ID>" for an id the
  /// tokenizer does not know.
  public func tokens(_ ids: [Int32]) -> [String] {
    ids.map { id in
      if let content = addedTokenContent[id] { return content }
      guard let bytes = tokenBytes[id] else { return "<unk:\(id)>" }
      if case .byteLevel = scheme { return ByteAlphabet.text(of: bytes) }
      return String(decoding: bytes, as: UTF8.self)
    }
  }

  /// The text of `ids`; special tokens are kept unless `skipSpecial`. Byte-level: the tokens'
  /// bytes joined and read as UTF-8 (invalid sequences become U+FFFD, as the ByteLevel decoder
  /// does). SentencePiece: "▁" read as a space, each run of <0xXX> pieces as UTF-8 (a run that is
  /// not valid UTF-8 gives one U+FFFD per piece, as ByteFallback does), and one leading space
  /// dropped.
  public func decode(_ ids: [Int32], skipSpecial: Bool = false) -> String {
    guard case .sentencePiece = scheme else {
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
    var text = ""
    var pending: [UInt8] = []
    func flush() {
      guard !pending.isEmpty else { return }
      if let valid = String(validating: pending, as: UTF8.self) {
        text += valid
      } else {
        text += String(repeating: "\u{FFFD}", count: pending.count)
      }
      pending.removeAll()
    }
    for id in ids {
      if let byte = fallbackByte[id], addedTokenContent[id] == nil {
        pending.append(byte)
        continue
      }
      flush()
      if let content = addedTokenContent[id] {
        if !skipSpecial { text += content }
      } else if let token = tokenBytes[id] {
        text += String(decoding: token, as: UTF8.self).replacingOccurrences(
          of: "\u{2581}", with: " ")
      }
    }
    flush()
    if decodeStripsLeadingSpace && text.unicodeScalars.first == " " {
      text.unicodeScalars.removeFirst()
    }
    return text
  }
}
