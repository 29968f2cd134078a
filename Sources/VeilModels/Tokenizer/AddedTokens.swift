// AddedTokens owns the "added tokens" of a tokenizer ([CLS], [SEP], [MASK], ... and any user
// additions): finding them in the text before WordPiece runs, as `tokenizers`'
// tokenizer/added_vocabulary.rs does. So "hello [MASK]" gives the [MASK] id, not "[", "mask", "]".
//
// `tokenizers` finds them with a leftmost-longest Aho-Corasick automaton; with the handful of
// added tokens a BERT tokenizer has, checking the patterns at each position whose scalar can
// start one is as fast and gives the same matches.

/// One added token of a tokenizer.json (`added_tokens`) or tokenizer_config.json.
struct AddedToken: Sendable, Equatable {
  /// The token's id.
  var id: Int32
  /// The text it matches.
  var content: [Unicode.Scalar]
  /// Match only when not preceded or followed by a word character (regex `\w`).
  var singleWord = false
  /// Also swallow the whitespace on its left.
  var leftStrip = false
  /// Also swallow the whitespace on its right.
  var rightStrip = false
  /// Match in the normalised text (true) or in the raw text (false, usual for special tokens).
  var normalized = false
  /// A special token (skipped when decoding; no effect on encoding here).
  var special = false
}

/// Finds added tokens in a run of scalars and splits the run around them.
struct AddedTokenMatcher: Sendable {
  /// A piece of the split: plain text to tokenise further, or an added token's id.
  enum Piece: Equatable {
    case text(Range<Int>)
    case token(Int32)
  }

  private struct Pattern: Sendable {
    var scalars: [Unicode.Scalar]
    var token: AddedToken
  }

  /// Patterns grouped by their first scalar, longest first.
  private let patternsByFirstScalar: [UInt32: [Pattern]]

  /// A matcher for `tokens`, each searched as `pattern(token)` (the raw content, or its
  /// normalised form for normalised tokens). Empty patterns never match.
  init(tokens: [AddedToken], pattern: (AddedToken) -> [Unicode.Scalar] = { $0.content }) {
    var byContent: [[UInt32]: Pattern] = [:]
    for token in tokens {
      let scalars = pattern(token)
      guard !scalars.isEmpty else { continue }
      byContent[scalars.map(\.value)] = Pattern(scalars: scalars, token: token)
    }
    var grouped: [UInt32: [Pattern]] = [:]
    for pattern in byContent.values {
      grouped[pattern.scalars[0].value, default: []].append(pattern)
    }
    for key in grouped.keys {
      grouped[key]?.sort { $0.scalars.count > $1.scalars.count }
    }
    patternsByFirstScalar = grouped
  }

  /// Whether there is nothing to find.
  var isEmpty: Bool { patternsByFirstScalar.isEmpty }

  /// Splits `text[range]` into text pieces and added tokens, in order. Empty text pieces are
  /// left out. Mirrors `AddedVocabulary::find_matches`, including how single_word, lstrip and
  /// rstrip move the boundaries.
  func split(_ text: [Unicode.Scalar], _ range: Range<Int>) -> [Piece] {
    if isEmpty { return range.isEmpty ? [] : [.text(range)] }
    var pieces: [Piece] = []
    var pieceStart = range.lowerBound  // `start_offset` in tokenizers
    var position = range.lowerBound
    while position < range.upperBound {
      guard let candidates = patternsByFirstScalar[text[position].value],
        let pattern = candidates.first(where: { matches($0.scalars, in: text, at: position, before: range.upperBound) })
      else {
        position += 1
        continue
      }
      var start = position
      var stop = position + pattern.scalars.count
      position = stop  // the automaton resumes after the match, accepted or not
      let token = pattern.token
      if token.singleWord {
        let startsAlone = start == range.lowerBound || !Self.isWordCharacter(text[start - 1])
        let stopsAlone = stop == range.upperBound || !Self.isWordCharacter(text[stop])
        if !startsAlone || !stopsAlone { continue }
      }
      if token.leftStrip {
        var newStart = start
        while newStart > range.lowerBound, BertCharacterClass.isWhitespace(text[newStart - 1].value) {
          newStart -= 1
        }
        start = max(newStart, pieceStart)
      }
      if token.rightStrip {
        while stop < range.upperBound, BertCharacterClass.isWhitespace(text[stop].value) { stop += 1 }
      }
      if pieceStart < start { pieces.append(.text(pieceStart..<start)) }
      pieces.append(.token(token.id))
      pieceStart = stop
    }
    if pieceStart < range.upperBound { pieces.append(.text(pieceStart..<range.upperBound)) }
    return pieces
  }

  private func matches(
    _ pattern: [Unicode.Scalar], in text: [Unicode.Scalar], at position: Int, before end: Int
  ) -> Bool {
    guard end - position >= pattern.count else { return false }
    for offset in pattern.indices where text[position + offset] != pattern[offset] { return false }
    return true
  }

  /// Rust regex's Unicode `\w`: Alphabetic, marks, decimal digits, connector punctuation and
  /// join controls.
  private static func isWordCharacter(_ scalar: Unicode.Scalar) -> Bool {
    let properties = scalar.properties
    if properties.isAlphabetic || properties.isJoinControl { return true }
    switch properties.generalCategory {
    case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation:
      return true
    default:
      return false
    }
  }
}
