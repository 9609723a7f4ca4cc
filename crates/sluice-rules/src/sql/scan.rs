//! The light lexer under the SQL checks: quotes, `$$` bodies and `--`, `//`,
//! `/* */` comments understood, statements split on top-level `;`, each
//! with its tokens and first line.

/// A token of the light lexer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tok<'a> {
    Word(&'a str),
    Open,
    Close,
    Semi,
    /// Strings, quoted identifiers, numbers, operators: present, not inspected.
    Other,
}

/// One statement's tokens and where its text lies.
pub(super) struct Piece<'a> {
    pub(super) toks: Vec<Tok<'a>>,
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) line: u32,
}

/// Splits `text` into statements on top-level `;`, skipping comments.
pub(super) fn scan(text: &str) -> Vec<Piece<'_>> {
    let bytes = text.as_bytes();
    let mut pieces = Vec::new();
    let mut toks: Vec<Tok> = Vec::new();
    let mut start = 0usize;
    let mut start_line = 1u32;
    let mut line = 1u32;
    let mut i = 0usize;
    let mut depth = 0i32;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\n' => {
                line += 1;
                i += 1;
            }
            b' ' | b'\t' | b'\r' => i += 1,
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    if bytes[i] == b'\n' {
                        line += 1;
                    }
                    i += 1;
                }
                i = (i + 2).min(bytes.len());
            }
            b'\'' | b'"' | b'`' => {
                if toks.is_empty() {
                    start = i;
                    start_line = line;
                }
                let quote = b;
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == b'\n' {
                        line += 1;
                    }
                    if bytes[i] == b'\\' && quote == b'\'' {
                        i += 2;
                        continue;
                    }
                    if bytes[i] == quote {
                        if bytes.get(i + 1) == Some(&quote) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i = (i + 1).min(bytes.len());
                toks.push(Tok::Other);
            }
            b'$' if bytes.get(i + 1) == Some(&b'$') => {
                if toks.is_empty() {
                    start = i;
                    start_line = line;
                }
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'$' && bytes.get(i + 1) == Some(&b'$')) {
                    if bytes[i] == b'\n' {
                        line += 1;
                    }
                    i += 1;
                }
                i = (i + 2).min(bytes.len());
                toks.push(Tok::Other);
            }
            b';' => {
                if depth <= 0 {
                    if !toks.is_empty() {
                        pieces.push(Piece {
                            toks: std::mem::take(&mut toks),
                            start,
                            end: i,
                            line: start_line,
                        });
                    }
                    depth = 0;
                } else {
                    toks.push(Tok::Semi);
                }
                i += 1;
            }
            _ => {
                if toks.is_empty() {
                    start = i;
                    start_line = line;
                }
                if b.is_ascii_alphabetic() || b == b'_' {
                    let s = i;
                    while i < bytes.len()
                        && (bytes[i].is_ascii_alphanumeric()
                            || bytes[i] == b'_'
                            || bytes[i] == b'$')
                    {
                        i += 1;
                    }
                    toks.push(Tok::Word(&text[s..i]));
                } else {
                    match b {
                        b'(' => {
                            depth += 1;
                            toks.push(Tok::Open);
                        }
                        b')' => {
                            depth -= 1;
                            toks.push(Tok::Close);
                        }
                        _ => toks.push(Tok::Other),
                    }
                    // Step over a whole UTF-8 character.
                    i += text[i..].chars().next().map_or(1, char::len_utf8);
                }
            }
        }
    }
    if !toks.is_empty() {
        pieces.push(Piece {
            toks,
            start,
            end: text.len(),
            line: start_line,
        });
    }
    pieces
}
