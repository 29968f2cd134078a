// ByteLevelSplits owns what byte-level BPE does before merging: GPT-2's byte-to-character
// alphabet, and the pre-tokenizer regexes of GPT-2 and LLaMA-3, written out over Unicode scalars
// with Oniguruma's semantics (as `tokenizers` runs them).
import Foundation

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

/// LLaMA-3's Split regex, written out over scalars like `GPT2Split` (first alternative that
/// matches; `\s` White_Space, `\p{L}` letters, `\p{N}` numbers):
/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`.
/// Every scalar is covered, so the matches tile the text.
enum Llama3Split {
  /// The regex as tokenizer.json writes it, to recognise the pre-tokenizer.
  static let pattern =
    #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

  static func isNewline(_ scalar: Unicode.Scalar) -> Bool { scalar == "\r" || scalar == "\n" }

  /// The scalar under simple case folding, for the contractions' `(?i:…)` (ASCII letters, and
  /// U+017F LONG S, which folds to "s").
  static func folded(_ scalar: Unicode.Scalar) -> Unicode.Scalar {
    if scalar == "\u{017F}" { return "s" }
    if ("A"..."Z").contains(scalar) { return Unicode.Scalar(scalar.value + 32)! }
    return scalar
  }

  static func split(_ text: ArraySlice<Unicode.Scalar>) -> [ArraySlice<Unicode.Scalar>] {
    var pieces: [ArraySlice<Unicode.Scalar>] = []
    var i = text.startIndex
    let end = text.endIndex
    func kind(_ j: Int) -> GPT2Split.Class { GPT2Split.kind(text[j]) }
    func run(from start: Int, while wanted: GPT2Split.Class) -> Int {
      var j = start
      while j < end, kind(j) == wanted { j += 1 }
      return j
    }
    func contraction(at i: Int) -> Int? {
      guard text[i] == "'", i + 1 < end else { return nil }
      let next = folded(text[i + 1])
      if next == "s" || next == "t" || next == "m" || next == "d" { return i + 2 }
      guard i + 2 < end else { return nil }
      let third = folded(text[i + 2])
      if (next == "r" && third == "e") || (next == "v" && third == "e")
        || (next == "l" && third == "l")
      {
        return i + 3
      }
      return nil
    }
    while i < end {
      let c = text[i]
      let cKind = kind(i)
      var stop: Int
      if let contracted = contraction(at: i) {
        stop = contracted
      } else if cKind == .letter {
        // `\p{L}+`
        stop = run(from: i, while: .letter)
      } else if cKind != .number && !isNewline(c) && i + 1 < end && kind(i + 1) == .letter {
        // `[^\r\n\p{L}\p{N}]\p{L}+`
        stop = run(from: i + 1, while: .letter)
      } else if cKind == .number {
        // `\p{N}{1,3}`
        stop = min(run(from: i, while: .number), i + 3)
      } else if kind(c == " " && i + 1 < end ? i + 1 : i) == .other {
        // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
        stop = run(from: c == " " ? i + 1 : i, while: .other)
        while stop < end && isNewline(text[stop]) { stop += 1 }
      } else {
        // `\s*[\r\n]+` up to the run's last newline, else `\s+(?!\S)`, else `\s+`
        let spaces = run(from: i, while: .space)
        if let lastNewline = text[i..<spaces].lastIndex(where: isNewline) {
          stop = lastNewline + 1
        } else if spaces < end && spaces - i > 1 {
          stop = spaces - 1
        } else {
          stop = spaces
        }
      }
      pieces.append(text[i..<stop])
      i = stop
    }
    return pieces
  }
}
