//! Photos in the chat: which bytes are accepted as an image (JPEG, PNG or WebP by their
//! magic numbers AND a full decode, within a size and a dimension limit) and the clean copy
//! that is kept (decoded and encoded again, so EXIF — GPS included — and every other
//! metadata chunk is gone), named by the SHA-256 of its bytes. Pure: no store, no HTTP.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What an image may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    /// The uploaded file, in bytes.
    pub max_bytes: usize,
    /// The longer side, in pixels (a small file can declare a huge canvas: checked before
    /// decoding, so a decompression bomb is refused without allocating it).
    pub max_side: u32,
}

impl Default for ImageLimits {
    fn default() -> Self {
        ImageLimits { max_bytes: 5 * 1024 * 1024, max_side: 8192 }
    }
}

/// The formats kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Jpeg,
    Png,
    Webp,
}

impl Format {
    pub fn mime(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
            Format::Webp => "image/webp",
        }
    }

    /// The format's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Format::Jpeg => "JPEG",
            Format::Png => "PNG",
            Format::Webp => "WebP",
        }
    }

    fn codec(self) -> ImageFormat {
        match self {
            Format::Jpeg => ImageFormat::Jpeg,
            Format::Png => ImageFormat::Png,
            Format::Webp => ImageFormat::WebP,
        }
    }

    /// The format the bytes say they are, by their magic numbers.
    pub fn sniff(bytes: &[u8]) -> Option<Format> {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Format::Jpeg)
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Format::Png)
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(Format::Webp)
        } else {
            None
        }
    }
}

/// Why bytes are not accepted as an image; each message names the problem for the sender.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    #[error("the image is empty")]
    Empty,
    #[error("the image has {size} bytes; at most {max} are accepted")]
    TooLarge { size: usize, max: usize },
    #[error("the file is not a JPEG, PNG or WebP image ({0}); only photos in those formats can be sent")]
    NotAnImage(String),
    #[error("the file starts like a {format} image but cannot be read as one ({reason})")]
    Broken { format: &'static str, reason: String },
    #[error("the image is {width}×{height} pixels; at most {max} pixels a side are accepted")]
    TooBig { width: u32, height: u32, max: u32 },
    #[error("the image is {width}×{height} pixels; at most {MAX_PIXELS} pixels in all are accepted")]
    TooManyPixels { width: u32, height: u32 },
}

/// Pixels in all: a 5 MB file can declare a canvas whose pixels take gigabytes. 50 million
/// covers the largest phone cameras' photos at about 200 MB decoded.
pub const MAX_PIXELS: u64 = 50_000_000;

/// An accepted image: the clean copy and what a message says of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Clean {
    pub info: ImageInfo,
    pub bytes: Vec<u8>,
}

/// What a message says of its image; the bytes are stored once under `hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// SHA-256 (lower-case hex) of the clean bytes.
    pub hash: String,
    pub format: Format,
    pub width: u32,
    pub height: u32,
    pub bytes: usize,
}

/// A short description of what the bytes look like instead (text, nothing recognisable).
fn looks_like(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(512)];
    // UTF-8 throughout, but for a character the cut at 512 bytes split.
    let text = match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    };
    if text {
        return "its bytes are text".into();
    }
    let magic: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("its first bytes are {}", magic.join(" "))
}

/// Checks `bytes` and returns the clean copy: magic numbers, then the declared size against
/// the dimension limit, then a full decode, turned upright by its EXIF orientation (which the
/// clean copy no longer carries), then encoded again in the same format.
pub fn clean(bytes: &[u8], limits: ImageLimits) -> Result<Clean, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    if bytes.len() > limits.max_bytes {
        return Err(ImageError::TooLarge { size: bytes.len(), max: limits.max_bytes });
    }
    let format = Format::sniff(bytes).ok_or_else(|| ImageError::NotAnImage(looks_like(bytes)))?;
    let broken = |e: image::ImageError| ImageError::Broken { format: format.name(), reason: e.to_string() };
    // The decoder's own allocation cap (512 MiB) stays; the sides and pixels are checked
    // below, from the header, so that the refusal names them.
    let reader = ImageReader::with_format(Cursor::new(bytes), format.codec());
    let mut decoder = reader.into_decoder().map_err(broken)?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(ImageError::Broken { format: format.name(), reason: "it has no pixels".into() });
    }
    if width.max(height) > limits.max_side {
        return Err(ImageError::TooBig { width, height, max: limits.max_side });
    }
    if width as u64 * height as u64 > MAX_PIXELS {
        return Err(ImageError::TooManyPixels { width, height });
    }
    let orientation = decoder.orientation().map_err(broken)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| match e {
        image::ImageError::Limits(_) => ImageError::TooBig { width, height, max: limits.max_side },
        e => broken(e),
    })?;
    image.apply_orientation(orientation);
    // An orientation may have swapped the sides.
    let (image_w, image_h) = (image.width(), image.height());
    let out = encode(image, format).map_err(|e| ImageError::Broken { format: format.name(), reason: e.to_string() })?;
    let info = ImageInfo { hash: hex::encode(Sha256::digest(&out)), format, width: image_w, height: image_h, bytes: out.len() };
    Ok(Clean { info, bytes: out })
}

/// Encodes pixels alone: none of the encoders is given metadata, so none is written.
fn encode(image: DynamicImage, format: Format) -> image::ImageResult<Vec<u8>> {
    let mut out = Vec::new();
    match format {
        Format::Jpeg => {
            // JPEG has no alpha; grey stays grey.
            let image = match image {
                DynamicImage::ImageLuma8(_) | DynamicImage::ImageRgb8(_) => image,
                other => DynamicImage::ImageRgb8(other.to_rgb8()),
            };
            image.write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90))?;
        }
        Format::Png => image.write_with_encoder(image::codecs::png::PngEncoder::new(&mut out))?,
        Format::Webp => {
            // The WebP encoder is lossless and takes 8-bit RGB or RGBA only.
            let image = match image {
                DynamicImage::ImageRgb8(_) | DynamicImage::ImageRgba8(_) => image,
                other if other.color().has_alpha() => DynamicImage::ImageRgba8(other.to_rgba8()),
                other => DynamicImage::ImageRgb8(other.to_rgb8()),
            };
            image.write_with_encoder(image::codecs::webp::WebPEncoder::new_lossless(&mut out))?;
        }
    }
    Ok(out)
}

/// Whether `hash` is the shape of a clean copy's name (64 lower-case hex digits).
pub fn is_hash(hash: &str) -> bool {
    hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
pub(crate) mod samples {
    //! Small real images, made with the same crate, for tests.
    use image::{ImageBuffer, Rgb, Rgba};

    pub fn picture(w: u32, h: u32) -> image::DynamicImage {
        image::DynamicImage::ImageRgb8(ImageBuffer::from_fn(w, h, |x, y| Rgb([(x * 7) as u8, (y * 5) as u8, 120])))
    }

    pub fn png(w: u32, h: u32) -> Vec<u8> {
        let mut out = Vec::new();
        image::DynamicImage::ImageRgba8(ImageBuffer::from_fn(w, h, |x, y| Rgba([(x * 3) as u8, (y * 3) as u8, 200, 255])))
            .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    pub fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let mut out = Vec::new();
        picture(w, h).write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Jpeg).unwrap();
        out
    }

    pub fn webp(w: u32, h: u32) -> Vec<u8> {
        let mut out = Vec::new();
        picture(w, h).write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::WebP).unwrap();
        out
    }

    /// EXIF as a phone writes it: big-endian TIFF, one IFD entry (Orientation = 6, "rotate 90°
    /// clockwise to view"), then a GPS position.
    pub const EXIF: &[u8] = b"Exif\0\0MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0\0\0\0\0GPSLatitude=31.2304N;GPSLongitude=121.4737E";

    /// A JPEG with an APP1 EXIF segment (orientation 6 and a GPS position), after SOI.
    pub fn jpeg_with_exif(w: u32, h: u32) -> Vec<u8> {
        let plain = jpeg(w, h);
        let payload = EXIF;
        let len = (payload.len() + 2) as u16;
        let mut out = plain[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(payload);
        out.extend_from_slice(&plain[2..]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::samples::*;
    use super::*;

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn the_three_formats_are_kept_in_their_format() {
        for (bytes, format) in [(jpeg(40, 30), Format::Jpeg), (png(40, 30), Format::Png), (webp(40, 30), Format::Webp)] {
            let c = clean(&bytes, ImageLimits::default()).unwrap();
            assert_eq!(c.info.format, format);
            assert_eq!((c.info.width, c.info.height), (40, 30));
            assert_eq!(Format::sniff(&c.bytes), Some(format));
            assert_eq!(c.info.hash, hex::encode(Sha256::digest(&c.bytes)));
            assert!(is_hash(&c.info.hash));
        }
    }

    #[test]
    fn exif_and_gps_are_gone_and_the_photo_is_upright() {
        let bytes = jpeg_with_exif(40, 24);
        assert!(contains(&bytes, b"GPSLatitude"));
        let c = clean(&bytes, ImageLimits::default()).unwrap();
        assert!(!contains(&c.bytes, b"Exif") && !contains(&c.bytes, b"GPS"), "metadata survived");
        // Orientation 6 turned it a quarter: the clean copy needs no EXIF to show upright.
        assert_eq!((c.info.width, c.info.height), (24, 40));
        let decoded = image::load_from_memory(&c.bytes).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (24, 40));
    }

    #[test]
    fn text_named_png_is_refused_by_its_bytes() {
        let e = clean("这不是图片，只是改了扩展名的文字。".as_bytes(), ImageLimits::default()).unwrap_err();
        assert_eq!(e.to_string(), "the file is not a JPEG, PNG or WebP image (its bytes are text); only photos in those formats can be sent");
        // The right magic number and nothing behind it is not an image either.
        let mut fake = b"\x89PNG\r\n\x1a\n".to_vec();
        fake.extend_from_slice(b"garbage garbage garbage");
        assert!(matches!(clean(&fake, ImageLimits::default()), Err(ImageError::Broken { format: "PNG", .. })));
        let gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00";
        assert!(clean(gif, ImageLimits::default()).unwrap_err().to_string().contains("47 49 46 38"));
        assert_eq!(clean(&[], ImageLimits::default()), Err(ImageError::Empty));
    }

    #[test]
    fn size_and_dimensions_are_limited() {
        let bytes = png(100, 20);
        let small = ImageLimits { max_bytes: bytes.len() - 1, max_side: 8192 };
        assert!(matches!(clean(&bytes, small), Err(ImageError::TooLarge { .. })));
        let narrow = ImageLimits { max_bytes: 1 << 20, max_side: 99 };
        assert_eq!(clean(&bytes, narrow), Err(ImageError::TooBig { width: 100, height: 20, max: 99 }));
        // A tiny PNG declaring 8000×7000 (a decompression bomb's shape) is refused unread.
        let mut bomb = png(1, 1);
        bomb[16..20].copy_from_slice(&8000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&7000u32.to_be_bytes());
        let crc = crc32fast::hash(&bomb[12..29]);
        bomb[29..33].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(clean(&bomb, ImageLimits::default()), Err(ImageError::TooManyPixels { width: 8000, height: 7000 }));
    }

}
