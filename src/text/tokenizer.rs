//! The analyser as tantivy tokenizers, registered by name so the schema names them and an
//! index can only ever be analysed the way it was built.

use tantivy::tokenizer::{Token, TokenStream, Tokenizer, TokenizerManager};

use super::{char_bigrams, Analyzer};

/// Name of the word tokenizer (normalise → jieba → synonyms).
pub const TERM_TOKENIZER: &str = "kefu_terms";
/// Name of the character-bigram tokenizer (normalise → bigrams).
pub const BIGRAM_TOKENIZER: &str = "kefu_bigrams";

/// Registers both tokenizers, built on `analyzer`, with an index's tokenizer manager.
pub fn register_tokenizers(manager: &TokenizerManager, analyzer: &Analyzer) {
    manager.register(TERM_TOKENIZER, AnalyzerTokenizer { analyzer: analyzer.clone(), bigrams: false });
    manager.register(BIGRAM_TOKENIZER, AnalyzerTokenizer { analyzer: analyzer.clone(), bigrams: true });
}

#[derive(Clone)]
struct AnalyzerTokenizer {
    analyzer: Analyzer,
    bigrams: bool,
}

impl Tokenizer for AnalyzerTokenizer {
    type TokenStream<'a> = VecTokenStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> VecTokenStream {
        let words = if self.bigrams {
            char_bigrams(&super::normalize(text))
        } else {
            self.analyzer.terms(text)
        };
        VecTokenStream::new(words)
    }
}

/// A token stream over terms computed up front. Offsets are not kept: kefu never
/// highlights and never runs phrase queries, only term queries.
pub struct VecTokenStream {
    tokens: Vec<Token>,
    next: usize,
}

impl VecTokenStream {
    fn new(words: Vec<String>) -> VecTokenStream {
        let tokens = words
            .into_iter()
            .enumerate()
            .map(|(position, text)| Token { position, text, ..Token::default() })
            .collect();
        VecTokenStream { tokens, next: 0 }
    }
}

impl TokenStream for VecTokenStream {
    fn advance(&mut self) -> bool {
        self.next += 1;
        self.next <= self.tokens.len()
    }

    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}
