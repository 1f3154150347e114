//! The spill a project's consensus is computed from: one compact record per item (its counted
//! answers to each question with a consensus), written once and read back in item order as
//! often as the fits need.

use std::io::{BufReader, Read, Seek, SeekFrom, Write};

use crate::AppError;

/// Where a spill lives: a file, or memory.
pub(super) trait Storage: Read + Write + Seek + Send {}
impl<T: Read + Write + Seek + Send> Storage for T {}

pub(super) fn io_error(e: std::io::Error) -> AppError {
    AppError::Internal(Box::new(e))
}

/// One item's answers to one planned question.
#[derive(Debug, Clone, Default)]
pub(super) struct Votes {
    /// Responses that answered the question at all.
    pub(super) present: u32,
    /// Labels: `worker * K + label`; pairwise: the counts of a, b, tie, both bad; multi-label:
    /// per option the raters who chose it.
    pub(super) counts: Vec<u32>,
    /// Ratings.
    pub(super) values: Vec<f64>,
    /// For rater reliability, label and pairwise questions: every non-gold answer, counted or
    /// not, as `worker * (M + 1) + value` over the M options or sides (M: any other value).
    pub(super) raters: Vec<u32>,
}

/// One item as the spill keeps it.
#[derive(Debug, Clone, Default)]
pub(super) struct Record {
    pub(super) item_id: i64,
    pub(super) external_id: Option<String>,
    /// A reviewer's correction decides the item.
    pub(super) adjudicated: bool,
    /// Counted responses (not rejected, not corrected).
    pub(super) counted: u32,
    pub(super) votes: Vec<Votes>,
}

fn put_u32(out: &mut impl Write, v: u32) -> std::io::Result<()> {
    out.write_all(&v.to_le_bytes())
}

fn get_u32(input: &mut impl Read) -> std::io::Result<u32> {
    let mut b = [0; 4];
    input.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

impl Record {
    pub(super) fn write(&self, out: &mut impl Write) -> std::io::Result<()> {
        out.write_all(&[u8::from(self.adjudicated)])?;
        out.write_all(&self.item_id.to_le_bytes())?;
        match &self.external_id {
            None => put_u32(out, u32::MAX)?,
            Some(e) => {
                put_u32(out, e.len() as u32)?;
                out.write_all(e.as_bytes())?;
            }
        }
        put_u32(out, self.counted)?;
        for v in &self.votes {
            put_u32(out, v.present)?;
            for list in [&v.counts, &v.raters] {
                put_u32(out, list.len() as u32)?;
                for &c in list {
                    put_u32(out, c)?;
                }
            }
            put_u32(out, v.values.len() as u32)?;
            for &x in &v.values {
                out.write_all(&x.to_le_bytes())?;
            }
        }
        Ok(())
    }

    /// Reads the next record into `self`, reusing its buffers.
    pub(super) fn read(&mut self, input: &mut impl Read, questions: usize) -> std::io::Result<()> {
        let mut b1 = [0; 1];
        input.read_exact(&mut b1)?;
        self.adjudicated = b1[0] == 1;
        let mut b8 = [0; 8];
        input.read_exact(&mut b8)?;
        self.item_id = i64::from_le_bytes(b8);
        self.external_id = match get_u32(input)? {
            u32::MAX => None,
            n => {
                let mut text = vec![0; n as usize];
                input.read_exact(&mut text)?;
                Some(String::from_utf8_lossy(&text).into_owned())
            }
        };
        self.counted = get_u32(input)?;
        self.votes.resize_with(questions, Votes::default);
        for v in &mut self.votes {
            v.present = get_u32(input)?;
            for list in [&mut v.counts, &mut v.raters] {
                list.clear();
                for _ in 0..get_u32(input)? {
                    list.push(get_u32(input)?);
                }
            }
            v.values.clear();
            for _ in 0..get_u32(input)? {
                input.read_exact(&mut b8)?;
                v.values.push(f64::from_le_bytes(b8));
            }
        }
        Ok(())
    }
}

/// The records of a project's items, in item order, readable again and again.
pub(super) struct Spill {
    pub(super) reader: BufReader<Box<dyn Storage>>,
    pub(super) items: u64,
    pub(super) questions: usize,
}

impl Spill {
    /// Calls `each` with every record in order.
    pub(super) fn pass(&mut self, mut each: impl FnMut(&Record)) -> Result<(), AppError> {
        self.reader.seek(SeekFrom::Start(0)).map_err(io_error)?;
        let mut record = Record::default();
        for _ in 0..self.items {
            record
                .read(&mut self.reader, self.questions)
                .map_err(io_error)?;
            each(&record);
        }
        Ok(())
    }
}
