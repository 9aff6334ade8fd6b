//! Splitting a request line into words (separated by spaces, or in double quotes with `\"`,
//! `\\`, `\n` and `\t` escapes), and taking them one by one as a command's grammar asks.

use super::ParseError;

/// Splits a line into words, honouring double quotes.
pub fn tokenize(line: &str) -> Result<Vec<String>, ParseError> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(&first) = chars.peek() else {
            return Ok(words);
        };
        let mut word = String::new();
        if first == '"' {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(ParseError::UnterminatedQuote),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some('n') => word.push('\n'),
                        Some('t') => word.push('\t'),
                        Some(other) => word.push(other),
                        None => return Err(ParseError::UnterminatedQuote),
                    },
                    Some(other) => word.push(other),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                word.push(c);
            }
        }
        words.push(word);
    }
}

/// The words after the command word, consumed as a command's grammar asks.
pub(super) struct Args {
    pub(super) command: &'static str,
    pub(super) usage: &'static str,
    pub(super) words: std::vec::IntoIter<String>,
}

impl Args {
    pub(super) fn wrong(&self) -> ParseError {
        ParseError::Arguments {
            command: self.command,
            expected: self.usage,
        }
    }

    pub(super) fn next(&mut self) -> Result<String, ParseError> {
        self.words.next().ok_or_else(|| self.wrong())
    }

    pub(super) fn optional(&mut self) -> Option<String> {
        self.words.next()
    }

    pub(super) fn number<T: std::str::FromStr>(&mut self) -> Result<T, ParseError> {
        let word = self.next()?;
        word.parse().map_err(|_| ParseError::Number(word))
    }

    pub(super) fn rest(&mut self) -> Vec<String> {
        self.words.by_ref().collect()
    }

    pub(super) fn at_least_one(&mut self) -> Result<Vec<String>, ParseError> {
        let rest = self.rest();
        if rest.is_empty() {
            return Err(self.wrong());
        }
        Ok(rest)
    }

    pub(super) fn done(mut self) -> Result<(), ParseError> {
        match self.words.next() {
            None => Ok(()),
            Some(_) => Err(self.wrong()),
        }
    }

    pub(super) fn unknown_option(&self, option: String) -> ParseError {
        ParseError::Option {
            command: self.command,
            option,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(
            tokenize(r#"SET  k "a \"b\" c\n"  x"#).unwrap(),
            ["SET", "k", "a \"b\" c\n", "x"]
        );
        assert_eq!(
            tokenize(r#"SET k "open"#),
            Err(ParseError::UnterminatedQuote)
        );
        assert_eq!(tokenize("   ").unwrap(), Vec::<String>::new());
        assert_eq!(tokenize(r#""""#).unwrap(), [""]);
    }
}
