//! Reading what an ELF file needs from its headers (the `object` crate): only the ELF header,
//! program headers, section headers, `.dynamic`, `.gnu.version_r` and their string table are
//! read, through a read cache, never the whole file.

use std::io::Read;
use std::path::Path;

use object::Endianness;
use object::elf;
use object::read::ReadCache;
use object::read::elf::{FileHeader, ProgramHeader};

use super::{ElfNeeds, Kind, Machine, Version};

/// What the ELF executable or shared object at `path` needs; None for any other file (not
/// ELF, or an object file, core dump...). Err when it cannot be read, or starts as an ELF
/// file but its headers are not valid (then it could not run either).
pub fn read(path: &Path) -> std::io::Result<Option<ElfNeeds>> {
    let mut file = std::fs::File::open(path)?;
    let mut ident = [0u8; 5];
    if file.read_exact(&mut ident).is_err() || &ident[..4] != b"\x7fELF" {
        return Ok(None);
    }
    let cache = ReadCache::new(file);
    let parsed = match ident[4] {
        2 => needs::<elf::FileHeader64<Endianness>>(&cache).map_err(|e| e.to_string()),
        1 => needs::<elf::FileHeader32<Endianness>>(&cache).map_err(|e| e.to_string()),
        c => Err(format!("unknown ELF class {c}")),
    };
    parsed.map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("its ELF headers are not valid: {e}"),
        )
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

type Data<'a> = &'a ReadCache<std::fs::File>;

fn needs<Elf: FileHeader<Endian = Endianness>>(
    data: Data<'_>,
) -> object::read::Result<Option<ElfNeeds>> {
    let header = Elf::parse(data)?;
    let endian = header.endian()?;
    let e_type = header.e_type(endian);
    if e_type != elf::ET_EXEC && e_type != elf::ET_DYN {
        return Ok(None);
    }
    let machine = Machine {
        e_machine: header.e_machine(endian).0,
        bits64: header.is_type_64(),
        big_endian: header.is_big_endian(),
    };
    let mut interp = None;
    for ph in header.program_headers(endian, data)? {
        if let Some(i) = ph.interpreter(endian, data)? {
            interp = Some(text(i));
        }
    }
    let sections = header.sections(endian, data)?;
    let mut needed = Vec::new();
    let mut runpath = Vec::new();
    let dynamic = sections.dynamic_table(endian, data)?;
    for d in &dynamic {
        if d.tag == elf::DT_NEEDED {
            needed.push(text(dynamic.string(d)?));
        } else if d.tag == elf::DT_RUNPATH || d.tag == elf::DT_RPATH {
            runpath.extend(
                text(dynamic.string(d)?)
                    .split(':')
                    .filter(|p| !p.is_empty())
                    .map(str::to_string),
            );
        }
    }
    let (mut glibc, mut glibcxx) = (None, None);
    if let Some((mut verneed, link)) = sections.gnu_verneed(endian, data)? {
        let strings = sections.strings(endian, data, link)?;
        while let Some((_, mut aux)) = verneed.next()? {
            while let Some(a) = aux.next()? {
                let name = text(a.name(endian, strings)?);
                let (slot, version) = match version_of(&name) {
                    Some(found) => found,
                    None => continue,
                };
                let slot = if slot { &mut glibc } else { &mut glibcxx };
                if slot.as_ref().is_none_or(|v| &version > v) {
                    *slot = Some(version);
                }
            }
        }
    }
    let kind = if e_type == elf::ET_EXEC || interp.is_some() {
        Kind::Executable
    } else {
        Kind::SharedObject
    };
    Ok(Some(ElfNeeds {
        kind,
        machine,
        interp,
        glibc,
        glibcxx,
        needed,
        runpath,
    }))
}

/// `GLIBC_2.34` -> (true, 2.34), `GLIBCXX_3.4.30` -> (false, 3.4.30); other names (such as
/// `GLIBC_PRIVATE` or `CXXABI_1.3`) None. `GLIBC_ABI_DT_RELR` came with glibc 2.36.
fn version_of(name: &str) -> Option<(bool, Version)> {
    if name == "GLIBC_ABI_DT_RELR" {
        return Some((true, Version(vec![2, 36])));
    }
    if let Some(v) = name.strip_prefix("GLIBCXX_") {
        return Version::parse(v).map(|v| (false, v));
    }
    name.strip_prefix("GLIBC_")
        .and_then(Version::parse)
        .map(|v| (true, v))
}
