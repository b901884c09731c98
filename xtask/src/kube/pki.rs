//! The control plane's certificates, keys and static tokens, made fresh for
//! every control plane so nothing secret is ever cached or committed.

use std::io::Read;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use super::error::{Result, io};

/// A static bearer token and who the apiserver believes holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub token: String,
    pub user: String,
    pub groups: Vec<String>,
}

impl Token {
    /// A random token for `user` in `groups`.
    pub fn new(user: &str, groups: &[&str]) -> Result<Self> {
        Ok(Self {
            token: random_hex(16)?,
            user: user.to_owned(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        })
    }
}

/// Paths of the files kube-apiserver reads, all inside one directory.
#[derive(Debug, Clone)]
pub struct Pki {
    pub dir: PathBuf,
    pub ca_pem: String,
}

impl Pki {
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
    pub fn serving_cert(&self) -> PathBuf {
        self.dir.join("apiserver.crt")
    }
    pub fn serving_key(&self) -> PathBuf {
        self.dir.join("apiserver.key")
    }
    pub fn sa_public(&self) -> PathBuf {
        self.dir.join("sa.pub")
    }
    pub fn sa_private(&self) -> PathBuf {
        self.dir.join("sa.key")
    }
    pub fn tokens(&self) -> PathBuf {
        self.dir.join("tokens.csv")
    }
}

/// Writes a CA, a serving certificate for `127.0.0.1` and `localhost` signed
/// by it, a service-account signing key pair, and `tokens.csv` into `dir`.
pub fn generate(dir: &Path, tokens: &[Token]) -> Result<Pki> {
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "odigos-test-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    // rustls checks IP SANs, so the address clients dial must be in the certificate.
    let serving_key = KeyPair::generate()?;
    let mut serving_params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
    serving_params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    serving_params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    serving_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let serving_cert = serving_params.signed_by(&serving_key, &issuer)?;

    let sa_key = KeyPair::generate()?;

    let pki = Pki {
        dir: dir.to_path_buf(),
        ca_pem: ca_cert.pem(),
    };
    write(&pki.ca_cert(), &pki.ca_pem)?;
    write(&pki.serving_cert(), &serving_cert.pem())?;
    write(&pki.serving_key(), &serving_key.serialize_pem())?;
    write(&pki.sa_public(), &sa_key.public_key_pem())?;
    write(&pki.sa_private(), &sa_key.serialize_pem())?;
    write(&pki.tokens(), &tokens_csv(tokens))?;
    Ok(pki)
}

/// kube-apiserver's `--token-auth-file` format: `token,user,uid,"group1,group2"`.
fn tokens_csv(tokens: &[Token]) -> String {
    tokens
        .iter()
        .map(|t| {
            format!(
                "{},{},{},\"{}\"\n",
                t.token,
                t.user,
                t.user,
                t.groups.join(",")
            )
        })
        .collect()
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(io(format!("writing {}", path.display())))
}

/// `bytes` random bytes from the kernel, as lowercase hex.
pub(crate) fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(io("reading /dev/urandom"))?;
    Ok(hex::encode(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_csv_quotes_the_group_list() {
        let tokens = [Token {
            token: "t1".into(),
            user: "admin".into(),
            groups: vec!["system:masters".into(), "x".into()],
        }];
        assert_eq!(tokens_csv(&tokens), "t1,admin,admin,\"system:masters,x\"\n");
    }

    #[test]
    fn generate_writes_every_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let token = Token::new("admin", &["system:masters"]).expect("token");
        assert_eq!(token.token.len(), 32);
        let pki = generate(dir.path(), &[token]).expect("pki");
        for path in [
            pki.ca_cert(),
            pki.serving_cert(),
            pki.serving_key(),
            pki.sa_public(),
            pki.sa_private(),
            pki.tokens(),
        ] {
            assert!(path.is_file(), "{} missing", path.display());
        }
        assert!(pki.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    }
}
