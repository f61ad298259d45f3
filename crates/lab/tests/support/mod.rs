//! Test clients for the lab's endpoints: a raw VIM SOAP caller (the esxcli namespaces are internal API that
//! no SDK binds) and an SSH client built on russh.

use std::sync::Arc;

use co_lab::lab::RunningLab;
use co_lab::xml::{self, Element};

/// A logged-in SOAP session against the lab's vCenter, trusting exactly the lab certificate.
pub struct Soap {
    client: reqwest::Client,
    url: String,
}

impl Soap {
    pub async fn login(lab: &RunningLab) -> Soap {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(lab.certificate_pem.as_bytes()).unwrap(),
            )
            .cookie_store(true)
            .build()
            .unwrap();
        let soap = Soap {
            client,
            url: lab.vcenter_url.clone(),
        };
        let login = format!(
            "<userName>{}</userName><password>{}</password>",
            xml::escape(&lab.username),
            xml::escape(&lab.password)
        );
        soap.call("Login", "SessionManager", "SessionManager", &login)
            .await
            .unwrap();
        soap
    }

    /// Calls a method; `Ok(body)` is the `<method>Response` element, `Err(fault)` the fault detail element.
    pub async fn call(
        &self,
        method: &str,
        kind: &str,
        id: &str,
        args: &str,
    ) -> Result<Element, Element> {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope \
             xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" \
             xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soapenv:Body>\
             <{method} xmlns=\"urn:vim25\"><_this type=\"{kind}\">{id}</_this>{args}</{method}>\
             </soapenv:Body></soapenv:Envelope>"
        );
        let response = self
            .client
            .post(&self.url)
            .header("SOAPAction", "urn:vim25/8.0.3.0")
            .header("Content-Type", "text/xml; charset=utf-8")
            .body(body)
            .send()
            .await
            .unwrap();
        let ok = response.status().is_success();
        let text = response.text().await.unwrap();
        let root = xml::parse(&text).unwrap();
        let payload = root.child("Body").unwrap().children[0].clone();
        if ok {
            Ok(payload)
        } else {
            Err(payload
                .find("detail")
                .and_then(|d| d.children.first().cloned())
                .unwrap_or(payload))
        }
    }

    /// Runs an esxcli command on a host: `Ok(response document)` or `Err((faultMsg, faultDetail))`.
    pub async fn esxcli(
        &self,
        host: &str,
        words: &[&str],
        args: &[(&str, &str)],
    ) -> Result<Element, (String, String)> {
        let executer = self
            .call("RetrieveManagedMethodExecuter", "HostSystem", host, "")
            .await
            .unwrap();
        let mme = executer.child("returnval").unwrap().text.clone();
        let (namespace, name) = words.split_at(words.len() - 1);
        let arguments: String = args
            .iter()
            .map(|(n, v)| {
                let fragment = format!("<{n}>{}</{n}>", xml::escape(v));
                format!(
                    "<argument><name>{n}</name><val>{}</val></argument>",
                    xml::escape(&fragment)
                )
            })
            .collect();
        let call = format!(
            "<moid>ha-cli-handler-{}</moid><version>urn:vim25/5.0</version><method>vim.EsxCLI.{}.{}</method>{arguments}",
            namespace.join("-"),
            namespace.join("."),
            name[0]
        );
        let result = self
            .call("ExecuteSoap", "ManagedMethodExecuter", &mme, &call)
            .await
            .unwrap();
        let returnval = result.child("returnval").unwrap();
        if let Some(fault) = returnval.child("fault") {
            return Err((
                fault.child_text("faultMsg").unwrap_or_default().to_owned(),
                fault
                    .child_text("faultDetail")
                    .unwrap_or_default()
                    .to_owned(),
            ));
        }
        Ok(xml::parse(returnval.child_text("response").unwrap()).unwrap())
    }

    /// `FetchCLIInfo` for a namespace.
    pub async fn cli_info(&self, host: &str, namespace: &str) -> Result<Element, (String, String)> {
        let fragment = format!("<typeName>vim.EsxCLI.{namespace}</typeName>");
        let call = format!(
            "<moid>ha-dynamic-type-manager-local-cli-cliinfo</moid><version>urn:vim25/5.0</version>\
             <method>vim.CLIInfo.FetchCLIInfo</method><argument><name>typeName</name><val>{}</val></argument>",
            xml::escape(&fragment)
        );
        let result = self
            .call("ExecuteSoap", "ManagedMethodExecuter", host, &call)
            .await
            .unwrap();
        let returnval = result.child("returnval").unwrap();
        match returnval.child("fault") {
            Some(fault) => Err((
                fault.child_text("faultMsg").unwrap_or_default().to_owned(),
                fault
                    .child_text("faultDetail")
                    .unwrap_or_default()
                    .to_owned(),
            )),
            None => Ok(xml::parse(returnval.child_text("response").unwrap()).unwrap()),
        }
    }
}

/// `(status, message)` of a vmkfstools-namespace result.
pub fn status_message(result: &Element) -> (String, String) {
    (
        result.child_text("status").unwrap_or_default().to_owned(),
        result.child_text("message").unwrap_or_default().to_owned(),
    )
}

/// A root SSH client with an Ed25519 key.
pub struct SshClient {
    pub key: Arc<ssh_key::PrivateKey>,
}

struct AcceptAnyHostKey;

impl russh::client::Handler for AcceptAnyHostKey {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// Output of one remote command.
#[derive(Debug, Default)]
pub struct RemoteOutput {
    pub stdout: String,
    pub stderr: String,
    pub status: Option<u32>,
}

impl SshClient {
    pub fn new(seed: u8) -> SshClient {
        let pair = ssh_key::private::Ed25519Keypair::from_seed(&[seed; 32]);
        SshClient {
            key: Arc::new(ssh_key::PrivateKey::from(pair)),
        }
    }

    pub fn public_line(&self) -> String {
        self.key.public_key().to_openssh().unwrap()
    }

    async fn session(
        &self,
        addr: std::net::SocketAddr,
    ) -> Result<russh::client::Handle<AcceptAnyHostKey>, String> {
        let config = Arc::new(russh::client::Config::default());
        let mut handle = russh::client::connect(config, addr, AcceptAnyHostKey)
            .await
            .map_err(|e| e.to_string())?;
        let auth = handle
            .authenticate_publickey(
                "root",
                russh::keys::PrivateKeyWithHashAlg::new(self.key.clone(), None),
            )
            .await
            .map_err(|e| e.to_string())?;
        if !auth.success() {
            return Err("authentication rejected".into());
        }
        Ok(handle)
    }

    /// Runs one command; `Err` when the connection or authentication fails.
    pub async fn run(
        &self,
        addr: std::net::SocketAddr,
        command: &str,
    ) -> Result<RemoteOutput, String> {
        let handle = self.session(addr).await?;
        let mut channel = handle
            .channel_open_session()
            .await
            .map_err(|e| e.to_string())?;
        channel
            .exec(true, command)
            .await
            .map_err(|e| e.to_string())?;
        collect(&mut channel).await
    }

    /// Requests an interactive shell.
    pub async fn shell(&self, addr: std::net::SocketAddr) -> Result<RemoteOutput, String> {
        let handle = self.session(addr).await?;
        let mut channel = handle
            .channel_open_session()
            .await
            .map_err(|e| e.to_string())?;
        channel
            .request_shell(true)
            .await
            .map_err(|e| e.to_string())?;
        collect(&mut channel).await
    }

    /// Tries to open a port forward through the host.
    pub async fn forward(&self, addr: std::net::SocketAddr, port: u16) -> Result<(), String> {
        let handle = self.session(addr).await?;
        handle
            .channel_open_direct_tcpip("127.0.0.1", u32::from(port), "127.0.0.1", 5000)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

async fn collect(channel: &mut russh::Channel<russh::client::Msg>) -> Result<RemoteOutput, String> {
    let mut out = RemoteOutput::default();
    while let Some(msg) = channel.wait().await {
        match msg {
            russh::ChannelMsg::Data { data } => {
                out.stdout.push_str(&String::from_utf8_lossy(&data))
            }
            russh::ChannelMsg::ExtendedData { data, .. } => {
                out.stderr.push_str(&String::from_utf8_lossy(&data))
            }
            russh::ChannelMsg::ExitStatus { exit_status } => out.status = Some(exit_status),
            russh::ChannelMsg::Close => break,
            _ => {}
        }
    }
    Ok(out)
}

/// Forklift's restricted authorized_keys line (`DS=<ds>;CMD=<op>` routed to the datastore's script).
pub fn restricted_line(public_key: &str) -> String {
    co_esxi::forklift_key_line(public_key)
}
