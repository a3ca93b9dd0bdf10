import Foundation

/// Setting keys the server reads, and their defaults (Alist's names).
public enum SettingKey {
    public static let version = "version"
    public static let siteTitle = "site_title"
    public static let token = "token"
    public static let signAll = "sign_all"
    public static let linkExpiration = "link_expiration"
    public static let textTypes = "text_types"
    public static let audioTypes = "audio_types"
    public static let videoTypes = "video_types"
    public static let imageTypes = "image_types"
    public static let proxyTypes = "proxy_types"
    public static let tokenExpiresIn = "token_expires_in"
}

public enum DefaultSettings {
    public static let version = "0.1.0"

    /// Settings created on first run. `token` gets a random value when created.
    public static func items(randomToken: String) -> [SettingItem] {
        let site = 1, style = 2, preview = 3, global = 4
        return [
            SettingItem(key: SettingKey.version, value: version, group: site, flag: SettingItem.readonly),
            SettingItem(key: SettingKey.siteTitle, value: "PanList", group: site),
            SettingItem(key: "announcement", value: "", type: "text", group: site),
            SettingItem(key: "pagination_type", value: "all", type: "select", options: "all,pagination,load_more,auto_load_more", group: site),
            SettingItem(key: "default_page_size", value: "30", type: "number", group: site),
            SettingItem(key: "allow_indexed", value: "false", type: "bool", group: site),
            SettingItem(key: "allow_mounted", value: "true", type: "bool", group: site),
            SettingItem(key: "logo", value: "", type: "text", group: style),
            SettingItem(key: "favicon", value: "", group: style),
            SettingItem(key: "main_color", value: "#1890ff", group: style),
            SettingItem(key: SettingKey.textTypes, value: "txt,htm,html,xml,java,properties,sql,js,md,json,conf,ini,vue,php,py,bat,gitignore,yml,go,sh,c,cpp,h,hpp,tsx,vtt,srt,ass,rs,lrc", type: "text", group: preview, flag: SettingItem.private),
            SettingItem(key: SettingKey.audioTypes, value: "mp3,flac,ogg,m4a,wav,opus,wma", type: "text", group: preview, flag: SettingItem.private),
            SettingItem(key: SettingKey.videoTypes, value: "mp4,mkv,avi,mov,rmvb,webm,flv,m3u8,ts,m2ts,wmv", type: "text", group: preview, flag: SettingItem.private),
            SettingItem(key: SettingKey.imageTypes, value: "jpg,tiff,jpeg,png,gif,bmp,svg,ico,swf,webp,avif,heic", type: "text", group: preview, flag: SettingItem.private),
            SettingItem(key: SettingKey.proxyTypes, value: "m3u8", type: "text", group: preview, flag: SettingItem.private),
            SettingItem(key: "audio_autoplay", value: "true", type: "bool", group: preview),
            SettingItem(key: "video_autoplay", value: "true", type: "bool", group: preview),
            SettingItem(key: "hide_files", value: "/\\/README.md/i", type: "text", group: global),
            SettingItem(key: "package_download", value: "true", type: "bool", group: global),
            SettingItem(key: "search_index", value: "none", type: "select", options: "none", group: global),
            SettingItem(key: SettingKey.signAll, value: "true", type: "bool", group: global, flag: SettingItem.private),
            SettingItem(key: SettingKey.linkExpiration, value: "0", help: "hours a signed link stays valid; 0 = no expiry", type: "number", group: global, flag: SettingItem.private),
            SettingItem(key: SettingKey.token, value: randomToken, help: "admin API token; also the key that signs download links", group: 0, flag: SettingItem.private),
        ]
    }
}

/// Random strings for passwords, secrets and tokens.
public enum RandomString {
    static let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    public static func make(_ length: Int) -> String {
        var g = SystemRandomNumberGenerator()
        return String((0..<length).map { _ in alphabet[Int(g.next(upperBound: UInt64(alphabet.count)))] })
    }
}
