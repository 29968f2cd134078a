// WordPieceVocabulary owns the WordPiece model: the vocabulary as a trie over Unicode scalars
// and the greedy longest-match-first split of one word into pieces, as `tokenizers`'
// models/wordpiece does it.
//
// `tokenizers` tries sequence[start..<end] for end = len, len-1, ... and keeps the first hit,
// i.e. the longest prefix of the rest of the word that is in the vocabulary. Walking a trie
// from `start` finds that same prefix in one pass instead of one hash of each candidate.
// Keys are scalars compared exactly (no canonical equivalence), as `tokenizers` compares bytes.

/// The WordPiece vocabulary and its greedy matcher.
struct WordPieceVocabulary: Sendable {
  /// Node 0 roots the trie of whole tokens (matched at the start of a word); node 1 roots the
  /// trie of continuation tokens with their prefix ("##") removed.
  private static let wordStartRoot: Int32 = 0
  private static let continuationRoot: Int32 = 1

  /// Child of (node, scalar), keyed `node << 21 | scalar` (a scalar needs 21 bits).
  private var children: [UInt64: Int32] = [:]
  /// The token id ending at each node, or -1.
  private var idAtNode: [Int32] = [-1, -1]

  /// The id emitted for a word that cannot be split or is too long.
  var unknownId: Int32
  /// Words with more scalars than this become the unknown token without being split.
  let maxInputCharsPerWord: Int

  /// Builds the tries. Later entries win over earlier ones with the same text, as when
  /// `tokenizers` fills its hash map.
  init(
    entries: [(token: [Unicode.Scalar], id: Int32)], continuingSubwordPrefix: [Unicode.Scalar],
    unknownId: Int32, maxInputCharsPerWord: Int
  ) {
    self.unknownId = unknownId
    self.maxInputCharsPerWord = maxInputCharsPerWord
    children.reserveCapacity(entries.count * 6)
    idAtNode.reserveCapacity(entries.count * 6)
    for entry in entries {
      insert(entry.token[...], root: Self.wordStartRoot, id: entry.id)
      if entry.token.starts(with: continuingSubwordPrefix) {
        insert(entry.token[continuingSubwordPrefix.count...], root: Self.continuationRoot, id: entry.id)
      }
    }
  }

  private static func key(_ node: Int32, _ scalar: Unicode.Scalar) -> UInt64 {
    UInt64(UInt32(bitPattern: node)) << 21 | UInt64(scalar.value)
  }

  private mutating func insert(_ token: ArraySlice<Unicode.Scalar>, root: Int32, id: Int32) {
    var node = root
    for scalar in token {
      let key = Self.key(node, scalar)
      if let child = children[key] {
        node = child
      } else {
        let child = Int32(idAtNode.count)
        idAtNode.append(-1)
        children[key] = child
        node = child
      }
    }
    idAtNode[Int(node)] = id
  }

  /// The id of exactly `token` (compared scalar by scalar), if it is in the vocabulary.
  func id(of token: [Unicode.Scalar]) -> Int32? {
    var node = Self.wordStartRoot
    for scalar in token {
      guard let child = children[Self.key(node, scalar)] else { return nil }
      node = child
    }
    let id = idAtNode[Int(node)]
    return id >= 0 ? id : nil
  }

  /// Appends the WordPiece ids of one word (a non-empty run without whitespace or
  /// punctuation) to `ids`: the greedy pieces, or the unknown id alone if any part of the word
  /// matches nothing or the word is longer than `maxInputCharsPerWord` scalars.
  func appendIds(ofWord word: ArraySlice<Unicode.Scalar>, to ids: inout [Int32]) {
    if word.count > maxInputCharsPerWord {
      ids.append(unknownId)
      return
    }
    let firstPiece = ids.count
    var start = word.startIndex
    while start < word.endIndex {
      var node = start == word.startIndex ? Self.wordStartRoot : Self.continuationRoot
      var matchedId: Int32 = -1
      var matchedEnd = start
      var index = start
      while index < word.endIndex, let child = children[Self.key(node, word[index])] {
        node = child
        index += 1
        let id = idAtNode[Int(node)]
        if id >= 0 {
          matchedId = id
          matchedEnd = index
        }
      }
      if matchedId < 0 {
        ids.removeSubrange(firstPiece...)
        ids.append(unknownId)
        return
      }
      ids.append(matchedId)
      start = matchedEnd
    }
  }
}
